"""ImageNet VID evaluation (DESIGN §6): devkit mAP, motion-group mAP, detection files, reports."""

from dsfnet.evaluation.detections import Detections, read_detections, write_devkit_txt, write_jsonl
from dsfnet.evaluation.motion import MOTION_GROUPS, group_mask, motion_ious
from dsfnet.evaluation.vid_map import EvalResult, evaluate

__all__ = ["Detections", "read_detections", "write_jsonl", "write_devkit_txt", "MOTION_GROUPS", "motion_ious",
           "group_mask", "EvalResult", "evaluate"]
