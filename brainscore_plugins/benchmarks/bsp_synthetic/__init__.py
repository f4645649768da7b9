from brainscore_vision import benchmark_registry

from .benchmark import SyntheticBehaviorBenchmark, SyntheticRegionBenchmark

benchmark_registry['bsp-synthetic.V1-pls'] = lambda: SyntheticRegionBenchmark('V1')
benchmark_registry['bsp-synthetic.V2-pls'] = lambda: SyntheticRegionBenchmark('V2')
benchmark_registry['bsp-synthetic.V4-pls'] = lambda: SyntheticRegionBenchmark('V4')
benchmark_registry['bsp-synthetic.IT-pls'] = lambda: SyntheticRegionBenchmark('IT')
benchmark_registry['bsp-synthetic-i2n'] = SyntheticBehaviorBenchmark
