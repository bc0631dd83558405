# Shared plumbing: validate params.yaml, resolve the preset, and build command lines.
import os
import sys

from recon_restore.config import Params, load_doc, validate_params, write_resolved
from recon_restore.errors import UserError
from recon_restore import methods
from recon_restore.attack import attacks
from recon_restore.data import sources
from recon_restore.fingerprint import command_hash
from recon_restore.workflow import Plan

# Software deployment: `--sdm conda` builds this environment (the package and its
# dependencies); `--sdm apptainer` runs rules in the image of workflow/envs/recon-restore.def.
CONDA_ENV = "../envs/recon-restore.yaml"

PARAMS_FILE = workflow.configfiles[0] if workflow.configfiles else "params.yaml"
try:
    validate_params(config, PARAMS_FILE)
except UserError as e:
    raise WorkflowError(f"recon-restore: {e}")
PRM = Params(config, PARAMS_FILE)
# DVC reads the presets in full from params.resolved.yaml (its first stage writes it)
_resolved, _stale = write_resolved(load_doc(PARAMS_FILE), PARAMS_FILE, check=True)
if _stale and os.path.exists(_resolved):
    print(
        f"recon-restore: {_resolved} is out of date with {PARAMS_FILE}; DVC reads the old values until "
        f"`recon-restore params resolve` (or `dvc repro`, whose first stage runs it)",
        file=sys.stderr,
    )
PLAN = Plan(PRM)
OUT = PLAN.out
CFG = PRM.cfg
# the methods this preset evaluates (methods.py's list and restorers.n2n.evaluate)
METHOD_NAMES = methods.names(CFG["restorers"])
RESTORERS = methods.restorers(CFG["restorers"])
TRAINED = methods.trained(CFG["restorers"])
TRAINED_HERE = [r for r in TRAINED if not methods.adapted_from(r)]  # by restorers_train
# CPU threads of each restorer's restoration jobs (its class says)
RESTORE_THREADS = {r: PLAN.threads(r) for r in RESTORERS}
# restorers restored in shards (evaluate.restore_shard_runs), then merged
SHARDED = [r for r in RESTORERS if PLAN.restore_shards(r) > 1]
# the learning curves' restorer and its methods (evaluate.curve)
CURVE = CFG["evaluate"]["curve"]
# the evaluate section's study switches: a rule of the main evaluation reruns on none of them
EVALUATE_STUDIES = ["curve", "cross_attack", "wrong_release"]
CURVE_METHODS = methods.methods_of(CURVE["method"])
UNSHARDED = [r for r in RESTORERS if r not in SHARDED]


def one_of(names):
    """A wildcard constraint matching exactly these names (nothing when empty)."""
    return "|".join(names) if names else "(?!)"


def cli(command):
    """A recon-restore command with this workflow's params file and preset."""
    return (
        f"RECON_RESTORE_THREADS={{threads}} {sys.executable} -m recon_restore {command} "
        f"--params {PARAMS_FILE} --preset {PRM.preset} --overwrite --progress"
    )


def section(*keys, skip=()):
    """A params section, declared as rule params so that Snakemake reruns on changes
    (``skip``: subsections the rule does not read, e.g. a study's switches)."""
    node = CFG
    for k in keys:
        node = node[k]
    return repr({k: v for k, v in node.items() if k not in skip} if skip else node)


def attack_kind():
    """The attack's method and settings (params attack, less the network and its schedules):
    a rule that trains or attacks a target, or groups images by its classes, reruns on a change.
    """
    return section("attack", skip=["target", "train", "reconstruct"])


def caption(path):
    """The caption file (workflow/report/<name>.rst) of a report table or figure."""
    name = os.path.splitext(os.path.basename(path))[0]
    return f"../report/{name}.rst"


def code(command, restorer=None, part=None):
    """Hash of the sources one command runs ("stage verb"; with a restorer, also the module
    implementing it; with ``part``, the attack's or the data source's module, which their
    registries name by a string): the rule reruns when that code changes, and for no other.
    """
    extra = [methods.kind_module(restorer)] if restorer else []
    parts = list(part) if isinstance(part, (list, tuple)) else [part] if part else []
    return command_hash(*command.split(), tuple(extra + parts) or None)


ATTACK_MODULE = attacks.module_of(CFG["attack"])
# the cross-attack study (evaluate.cross_attack): the other attack, its module and folder
OWN_ATTACK = CFG["attack"].get("method", "kkt_binary")
CROSS_ATTACK = CFG["evaluate"]["cross_attack"]["method"]
CROSS_MODULE = attacks.module_of(CROSS_ATTACK)
CROSS = PLAN.cross_dir()
# the wrong-release control (evaluate.wrong_release): its methods and their restorers
WRONG_METHODS = (
    PLAN.wrong_methods() if CFG["evaluate"]["wrong_release"]["enabled"] else ["plain"]
)
WRONG_RESTORERS = methods.study_restorers(CFG["restorers"], WRONG_METHODS)
WRONG = f"{OUT}/evaluate/wrong_release"
# every evaluation whose plain reconstructions are restored (main and studies): folder -> plain file
EVAL_FOLDERS = list(PLAN.evaluation_folders())
SOURCE_MODULE = sources.module_of(CFG["data"])


# ---- input functions of the rules files -------------------------------------------------


def data_inputs(wildcards):
    return sources.inputs(CFG["data"])


def trained_checkpoint(restorer):
    """A trained restorer's checkpoint (an adapted one is made by the adaptation rules)."""
    folder = "adapt" if methods.adapted_from(restorer) else "restorers"
    return f"{OUT}/{folder}/{restorer}.pt"


def restore_checkpoint(wildcards):
    r = methods.checkpoint_of(wildcards.restorer)
    return [trained_checkpoint(r)] if r else []


def restore_weights(wildcards):
    w = methods.weights_file(
        wildcards.restorer, CFG["restorers"][methods.section_of(wildcards.restorer)]
    )
    return [w] if w else []


def train_inputs(wildcards):
    """A trained restorer reads the dataset's shards (manifest) or, for the synthetic
    Noise2Noise variants, the pool only (so they train while the attack runs)."""
    if PLAN.train_input(wildcards.method) == "pool":
        return {"pool": f"{OUT}/data/pool.h5"}
    return {"manifest": f"{OUT}/dataset/manifest.json"}


def train_params(wildcards):
    """The params a trained restorer reads (its rerun trigger)."""
    return repr(PLAN.train_params(wildcards.method))


def match_restored(wildcards):
    r = PLAN.restorer_of(wildcards.method)
    return [] if r is None else [f"{OUT}/evaluate/restored/{r}.h5"]


def restore_parts(wildcards):
    n = PLAN.restore_shards(wildcards.restorer)
    return [
        f"{OUT}/{wildcards.folder}/restored/{wildcards.restorer}/part-{j}.h5"
        for j in range(n)
    ]
