"""The Algonauts 2023 challenge (NSD fMRI) as Brain-Score benchmarks: the challenge data in its own layout
(:mod:`.data`), the challenge metric (:mod:`.metric`), ScalingVisionEncoder-style ridge encoding with a layer x
max-pool kernel search (:mod:`.encoding`) and the benchmarks themselves (:mod:`.benchmark`)."""
