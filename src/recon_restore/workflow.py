"""What the Snakefile needs from params: the preset's output paths, job and wave numbering.

Plumbing only (no experiment logic): the Snakefile asks this module how many dataset
waves, jobs and evaluation batches the preset has, which earlier shards a wave's plan
depends on, and which report files exist.
"""

from __future__ import annotations

import math

from .config import Params
from .dataset.plan import layout
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

    def shard(self, job: int) -> str:
        return f"{self.out}/dataset/shards/shard-{job}.h5"

    def shards(self) -> list[str]:
        return [self.shard(j["job"]) for j in self.jobs]

    def wave_of_job(self, job: int) -> int:
        return self.jobs[job]["wave"]

    def shards_before_wave(self, wave: int) -> list[str]:
        return [self.shard(j["job"]) for j in self.jobs if j["wave"] < wave]

    def run_batches(self, folder: str = "attack") -> list[str]:
        """The evaluation setting's run batches (``adapt``: the adaptation network's, paper 001)."""
        return [f"{self.out}/{folder}/runs/batch-{b}.h5" for b in range(self.eval_batches)]

    def restorer_of(self, method: str) -> str | None:
        return methods.restorer_of(method)

    def restorer(self, name: str):
        """The restorer ``name`` of the methods list with this preset's params."""
        return methods.restorer(name, self.cfg["restorers"])

    def train_input(self, method: str) -> str:
        """``pool`` or ``manifest``: what training ``method`` reads."""
        return self.restorer(method).train_input()

    def threads(self, restorer: str) -> int:
        """CPU threads of one restoration job of ``restorer``."""
        return methods.restorer_class(restorer).threads

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

    FIGURES = ("fig1_grid", "fig2_sorted", "fig3_scatter", "fig4_hallucination", "fig5_halves", "hallucination_roc", "coverage")
    TABLES = ("per_image.csv", "summary.csv", "summary.md", "summary.tex", "coverage.csv")

    def report_outputs(self) -> dict[str, list[str]]:
        """The report rule's outputs by kind (metrics, curves, tables, figures, appendix pages)."""
        r = f"{self.out}/report"
        n = 2 * self.cfg["evaluate"]["images_per_class"]
        pages = math.ceil(n / self.cfg["report"]["appendix_per_page"])
        return {
            "metrics": [f"{r}/metrics.json"],
            "curves": [f"{r}/curves/sorted_ssim.csv", f"{r}/curves/sorted_haarpsi.csv"],
            "tables": [f"{r}/tables/{t}" for t in self.TABLES],
            "figures": [f"{r}/figures/{f}.png" for f in self.FIGURES],
            "appendix": [f"{r}/figures/appendix_{p + 1:02d}.png" for p in range(pages)],
        }

    def cost_study_outputs(self) -> list[str]:
        """The dataset cost study's table, JSON and figure (``dataset.cost_study``)."""
        r = f"{self.out}/report/dataset_cost"
        return [f"{r}/cost.csv", f"{r}/cost.md", f"{r}/cost.json", f"{r}/cost.png"]

    def robustness_outputs(self) -> list[str]:
        """The robustness study's table, summary and figure (paper 004)."""
        r = f"{self.out}/report/robustness"
        return [f"{r}/robustness.csv", f"{r}/robustness.md", f"{r}/robustness.json", f"{r}/robustness_psnr_ratio.png"]

    def report_files(self) -> list[str]:
        return [f for files in self.report_outputs().values() for f in files]
