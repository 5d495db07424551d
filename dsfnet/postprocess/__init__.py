"""Offline post-processing of a whole video's detections: Seq-NMS (``dsfnet.postprocess.seqnms``)."""

from dsfnet.postprocess.seqnms import SeqNMSParams, seq_nms, seq_nms_dataset, seq_nms_frame_results, seq_nms_stream

__all__ = ["SeqNMSParams", "seq_nms", "seq_nms_dataset", "seq_nms_frame_results", "seq_nms_stream"]
