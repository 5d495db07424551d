"""From files on disk to training clips and evaluation videos.

``vid`` (ImageNet VID/DET reader + index cache), ``cocovid`` (CocoVID JSON read/write), ``synth`` (synthetic
VID), ``sampling`` (support frames), ``augment`` (photometric distortion, expand, crop), ``transforms`` (clip
resize/flip), ``dataset`` (training clips and loader), ``images`` (frame decoding); records in ``records``, the
config's splits in ``split``; ``json_fields`` and ``xml_file`` read users' JSON fields and XML files with one-line
errors.
"""
