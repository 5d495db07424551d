"""Offline post-processing of a whole video's detections: Seq-NMS (``dsfnet.postprocess.seqnms``)."""
