"""Large-scale classification (PLSC parity): a class-sharded FC layer over Horovod workers.

``from images.largescale import Entry`` gives PLSC's Entry API; see docs/largescale.md.
Modules: :mod:`sharding` (balanced shards, re-sharding), :mod:`collectives` (gather with a
summed gradient), :mod:`losses` (registry and margins), :mod:`fc_layer` (sharded logits, softmax
across shards, Partial FC, accuracy), :mod:`train_graph` (gradient routing), :mod:`checkpoint`
(per-shard checkpoints), :mod:`data` (base64 / TFRecord / mock), :mod:`embedding`,
:mod:`verification`, :mod:`export`, :mod:`trainer`, :mod:`entry`.
"""
from images.largescale.entry import Entry  # noqa: F401
