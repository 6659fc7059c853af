"""TF-slim's ``nets.nasnet`` package: NASNet-A (:mod:`.nasnet`), PNASNet-5 (:mod:`.pnasnet`)
and their cells (:mod:`.nasnet_utils`)."""
