"""TF-slim's ``nets.mobilenet`` package: the conv-def library (:mod:`.mobilenet`), its blocks
(:mod:`.conv_blocks`) and MobileNet v2 (:mod:`.mobilenet_v2`)."""
