"""What the Snakefile needs from params: the preset's output paths, job and wave numbering.

Plumbing only (no experiment logic): the Snakefile asks this module how many dataset
waves, jobs and evaluation batches the preset has, which earlier shards a wave file
depends on, and which report files exist.
"""

from __future__ import annotations

import math

from .config import Params
from .dataset.waves import layout
from . import methods



class Plan:
    def __init__(self, prm: Params, root: str = "results"):
        self.prm = prm
        self.cfg = prm.cfg
        methods.check_sections(self.cfg["restorers"], prm.source, prm.preset)
        self.out = f"{root}/{prm.preset}"
        lay = layout(self.cfg)
        self.jobs = lay["jobs"]
        self.n_waves = len(lay["waves"])
        ev = self.cfg["evaluate"]
        self.eval_batches = math.ceil(ev["runs"] / ev["runs_per_job"])
        if ev["curve"]["enabled"]:
            self._check_curve(ev["curve"]["method"])
        if ev["wrong_release"]["enabled"]:
            self.wrong_methods()

    def _check_curve(self, method: str) -> None:
        from .errors import UserError

        where = f"{self.prm.source}: key 'presets.{self.prm.preset}.evaluate.curve.method'"
        trained = [r for r in methods.trained(self.cfg["restorers"]) if not methods.adapted_from(r)]
        if method not in trained:
            raise UserError(f"{where}: {method!r} is not a restorer this preset trains; expected one of {', '.join(trained)}")
        if self.train_input(method) != "manifest":
            raise UserError(f"{where}: {method} trains on the pool images, not on the dataset; a learning curve "
                            f"over datasets needs one of {', '.join(r for r in trained if self.train_input(r) == 'manifest')}")

    def shard(self, job: int) -> str:
        return f"{self.out}/dataset/shards/shard-{job}.h5"

    def shards(self) -> list[str]:
        return [self.shard(j["job"]) for j in self.jobs]

    def wave_of_job(self, job: int) -> int:
        return self.jobs[job]["wave"]

    def shards_before_wave(self, wave: int) -> list[str]:
        return [self.shard(j["job"]) for j in self.jobs if j["wave"] < wave]

    def evaluation_folders(self) -> dict[str, str]:
        """Every evaluation whose plain reconstructions are restored, by its folder under the
        output folder -> its plain file: the main one, the cross-attack study's, the
        wrong-release control's (the adaptation network's reconstructions) and each defence
        setting's. A sharded restorer (``evaluate.restore_shard_runs``) is restored in shards
        in every one (their runs are the evaluation's ``evaluate.runs``, numbered alike)."""
        cross = self.cross_dir().removeprefix(f"{self.out}/")
        out = {"evaluate": f"{self.out}/evaluate/plain.h5", cross: f"{self.cross_dir()}/plain.h5",
               "evaluate/wrong_release": f"{self.out}/adapt/plain.h5"}
        out.update({f"defences/{s}": f"{self.out}/defences/{s}/plain.h5" for s in self.defence_settings()})
        return out

    def plain_of(self, folder: str) -> str:
        return self.evaluation_folders()[folder]

    def cross_dir(self) -> str:
        """The cross-attack study's folder (``evaluate.cross_attack``)."""
        return f"{self.out}/evaluate/cross/{self.cfg['evaluate']['cross_attack']['method']}"

    def wrong_methods(self) -> list[str]:
        """The wrong-release control's methods: plain and those of ``evaluate.wrong_release.restorers``."""
        from .errors import UserError

        trained = methods.trained(self.cfg["restorers"])
        for r in self.cfg["evaluate"]["wrong_release"]["restorers"]:
            if r not in trained:
                raise UserError(f"{self.prm.source}: key 'presets.{self.prm.preset}.evaluate.wrong_release.restorers': {r!r} is not a "
                                f"trained restorer of this preset; expected some of {', '.join(trained)}")
        return methods.study_methods(self.cfg["restorers"], self.cfg["evaluate"]["wrong_release"]["restorers"])

    def wrong_outputs(self) -> list[str]:
        return [f"{self.out}/evaluate/wrong_release/wrong_release.csv", f"{self.out}/evaluate/wrong_release/wrong_release.md"]

    def defence_settings(self) -> list[str]:
        """The defences study's settings (``defences``; ``defences/defences.py``)."""
        from .defences.defences import settings

        return settings(self.cfg["defences"])

    def defence_methods(self) -> list[str]:
        """The defences study's methods: every method, or plain and ``defences.restorers``' methods."""
        from .errors import UserError

        chosen = self.cfg["defences"]["restorers"]
        trained = methods.restorers(self.cfg["restorers"])
        for r in chosen or []:
            if r not in trained:
                raise UserError(f"{self.prm.source}: key 'presets.{self.prm.preset}.defences.restorers': {r!r} is not a "
                                f"restorer of this preset's methods list; expected some of {', '.join(trained)}")
        return methods.study_methods(self.cfg["restorers"], chosen)

    def defence_params(self, setting: str) -> dict:
        """What one setting's network reads of params ``defences`` (its rule's rerun trigger)."""
        from .defences.defences import setting_params

        return setting_params(self.cfg["defences"], setting)

    def defence_module(self, setting: str) -> str:
        from .defences.defences import module_of

        return module_of(setting)

    def defence_outputs(self) -> list[str]:
        return [f"{self.out}/defences/defences.{ext}" for ext in ("csv", "md", "png")]

    def cross_run_batches(self) -> list[str]:
        return [f"{self.cross_dir()}/runs/batch-{b}.h5" for b in range(self.eval_batches)]

    def cross_outputs(self) -> list[str]:
        return [f"{self.cross_dir()}/cross.csv", f"{self.cross_dir()}/cross.md"]

    def run_batches(self, folder: str = "attack") -> list[str]:
        """The evaluation setting's run batches (``adapt``: the adaptation network's, paper 001)."""
        return [f"{self.out}/{folder}/runs/batch-{b}.h5" for b in range(self.eval_batches)]

    def restorer_of(self, method: str) -> str | None:
        return methods.restorer_of(method)

    def restorer(self, name: str):
        """The restorer ``name`` of the methods list with this preset's params."""
        return methods.restorer(name, self.cfg["restorers"], self.prm.spec)

    def train_input(self, method: str) -> str:
        """``pool`` or ``manifest``: what training ``method`` reads."""
        return self.restorer(method).train_input()

    def threads(self, restorer: str | None = None) -> int:
        """CPU threads of one network job (``cpu_threads``); of a restoration job of ``restorer``,
        1 where its class computes on one thread anyway (the classical denoisers)."""
        if restorer is not None and methods.restorer_class(restorer).threads == 1:
            return 1
        return int(self.cfg["cpu_threads"])

    def train_gpus(self, method: str) -> int:
        """GPUs (data-parallel processes) the training job of ``method`` asks for (``train.gpus``)."""
        return int(self.cfg["restorers"][methods.section_of(method)]["train"].get("gpus", 1))

    def restore_shards(self, restorer: str) -> int:
        """Restoration jobs of ``restorer`` (``evaluate.restore_shard_runs``)."""
        from .evaluate.shards import restorer_shards

        return restorer_shards(self.cfg["evaluate"], restorer)

    def train_params(self, method: str) -> dict:
        """The params training (and, under ``restorer``, restoring with) ``method`` reads."""
        return {"restorer": self.restorer(method).reads_params(), "resample": self.cfg["dataset"]["resample"]}

    FIGURES = ("fig1_grid", "fig2_sorted", "fig3_scatter", "fig4_hallucination", "fig5_halves", "hallucination_roc", "leakage_roc",
               "coverage")
    TABLES = ("per_image.csv", "summary.csv", "summary.md", "summary.tex", "coverage.csv")

    def report_outputs(self) -> dict[str, list[str]]:
        """The report rule's outputs by kind (metrics, curves, tables, figures, appendix pages)."""
        r = f"{self.out}/report"
        from .attack import attacks
        from .data import sources

        classes = attacks.get(self.cfg["attack"]).plan_classes(sources.num_classes(self.cfg["data"]))
        n = classes * self.cfg["evaluate"]["images_per_class"]
        pages = math.ceil(n / self.cfg["report"]["appendix_per_page"])
        return {
            "metrics": [f"{r}/metrics.json"],
            "curves": [f"{r}/curves/sorted_ssim.csv", f"{r}/curves/sorted_haarpsi.csv"],
            "tables": [f"{r}/tables/{t}" for t in self.TABLES],
            "figures": [f"{r}/figures/{f}.png" for f in self.FIGURES],
            "appendix": [f"{r}/figures/appendix_{p + 1:02d}.png" for p in range(pages)],
        }

    # ---- learning curves (evaluate.curve) ---------------------------------------------------

    def curve_datasets(self) -> dict[str, float]:
        """The learning curves' datasets: label (the fraction, as written) -> fraction of the shards."""
        return {f"{f:g}": f for f in self.cfg["evaluate"]["curve"]["fractions"]}

    def curve_shards(self, data: str) -> list[str]:
        """The shards of the curve's dataset ``data`` (a fraction of the preset's)."""
        from .evaluate.curve import subset

        return subset(self.shards(), self.curve_datasets()[data])

    def curve_dir(self, data: str, steps, seed) -> str:
        return f"{self.out}/evaluate/curve/{data}/{steps}-s{seed}"

    def curve_matches(self) -> dict[str, str]:
        """``LABEL:STEPS:SEED:METHOD`` -> the match file of that setting (``evaluate curve --match``)."""
        c = self.cfg["evaluate"]["curve"]
        return {f"{d}:{n}:{s}:{m}": f"{self.curve_dir(d, n, s)}/match/{m}.h5"
                for d in self.curve_datasets() for n in c["steps"] for s in c["seeds"] for m in methods.methods_of(c["method"])}

    def curve_outputs(self) -> list[str]:
        return [f"{self.out}/evaluate/curve/curve.csv", f"{self.out}/evaluate/curve/curve.md"]

    def cost_study_outputs(self) -> list[str]:
        """The dataset cost study's table, JSON and figure (``dataset.cost_study``)."""
        r = f"{self.out}/report/dataset_cost"
        return [f"{r}/cost.csv", f"{r}/cost.md", f"{r}/cost.json", f"{r}/cost.png"]

    def robustness_outputs(self) -> list[str]:
        """The robustness study's table, summary and figure (paper 004)."""
        r = f"{self.out}/report/robustness"
        return [f"{r}/robustness.csv", f"{r}/robustness.md", f"{r}/robustness.json"] + [
            f"{r}/robustness_{k}.png" for k in ("psnr_ratio", "psnr", "noise")]

    def report_files(self) -> list[str]:
        return [f for files in self.report_outputs().values() for f in files]
