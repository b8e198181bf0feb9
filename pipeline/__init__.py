"""imagemend's Apache Beam batch job: shards in, restored images and per-task metrics out."""
