"""The study's published fits: ``optimized_parameters`` (log-space, as the study fits them) and ``loss`` of
``analysis/curve_fitting/outputs/fitting_results/<name>/results.pkl`` in scaling-primate-vvs (commit e76f924), keyed
by our (experiment, region)."""
from __future__ import annotations

from dataclasses import dataclass

REPOSITORY = "https://github.com/epflneuroailab/scaling-primate-vvs"
RESULTS = "scaling_primate_vvs/analysis/curve_fitting/outputs/fitting_results/{name}/results.pkl"


@dataclass(frozen=True)
class StudyFit:
    name: str  # the study's experiment (results folder)
    theta: tuple[float, ...]  # log-space parameters, in law.Law.fitted order
    loss: float  # the summed Huber loss of the study's best start

    @property
    def source(self) -> str:
        return f"{REPOSITORY}/blob/e76f924/{RESULTS.format(name=self.name)}"


_GROUP = {"V1": "v1", "V2": "v2", "V4": "v4", "IT": "it", "behavior": "behavior", "average": "avg"}
_STRONG = {
    "V1": ((-0.29886466, -1.78092853, 0.20156781), 0.0100449526016614),
    "V2": ((-0.41547695, -0.4501855, 0.28580347), 0.0159231651952065),
    "V4": ((-0.9789674, -0.08743281, 0.26530702), 0.0293602420718403),
    "IT": ((-0.95538297, 0.13344795, 0.23002378), 0.0295607308830761),
    "behavior": ((-23.22601311, 0.291205, 0.06074622), 0.0292442195983779),
    "average": ((-0.80132563, -0.43113214, 0.12838541), 0.0165422892352028),
}
_WEAK = {
    "V1": ((-0.213976296, 326.755912, 6.23640956, 22.8797602), 0.0101000742677827),
    "V2": ((-0.38539147, 154.44577516, 5.99289895, 11.27428198), 0.0147886614992595),
    "V4": ((-0.85274561, 39.68291327, 5.34625818, 3.28659922), 0.0324933154471189),
    "IT": ((-0.75752608, 150.34639804, 5.89212132, 11.14056215), 0.0251444266902893),
    "behavior": ((-0.74490437, 8.98963392, 4.91628345, 0.84629331), 0.0222519795793452),
    "average": ((-0.55381404, 22.06373969, 5.14207211, 1.9421696), 0.0183642430509711),
}
STUDY_FITS: dict[tuple[str, str], StudyFit] = {
    ("compute", "neural"): StudyFit("compute_neuro", (-0.6487916, -0.59944912, 0.15692827), 0.0726773830600232),
    ("compute", "behavior"): StudyFit("compute_behavior", (-21.74974865, 0.33861201, 0.0622286), 0.0699723621313835),
    **{("compute_strong_prior", r): StudyFit(f"region_{_GROUP[r]}_group1", *v) for r, v in _STRONG.items()},
    **{("compute_weak_prior", r): StudyFit(f"region_{_GROUP[r]}_group2", *v) for r, v in _WEAK.items()},
    ("parameters", "average"): StudyFit("parameter_scaling", (-0.57652574, -1.82382802, 0.38795842),
                                        0.0041002742995834),
    ("samples", "average"): StudyFit("sample_imagenet_scaling", (-0.61606834, -0.52551738, 0.27426944),
                                     0.008069779463593),
    ("samples_ecoset", "average"): StudyFit("sample_ecoset_scaling", (-0.64490484, -0.76065811, 0.21011397),
                                            0.0094197592930385),
    ("joint", "average"): StudyFit("compute_chinchilla", (-0.65935253, -1.70736889, 0.57966427, -0.69490718,
                                                          0.22247486), 0.015178111938069),
}
