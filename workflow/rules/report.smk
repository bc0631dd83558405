# report stage (paper 5, appendix): tables, figures, metrics JSON, DVC plot curves.


rule report:
    input:
        target=f"{OUT}/attack/target.pt",
        plain=f"{OUT}/evaluate/plain.h5",
        restored=expand(f"{OUT}/evaluate/restored/{{r}}.h5", r=RESTORERS),
        matches=expand(f"{OUT}/evaluate/match/{{m}}.h5", m=METHOD_NAMES),
        coverage=[f"{OUT}/dataset/coverage.json", f"{OUT}/dataset/coverage.csv"],
    output:
        metrics=PLAN.report_outputs()["metrics"][0],
        curves=PLAN.report_outputs()["curves"],
        tables=[
            report(t, caption=caption(t), category="Tables")
            for t in PLAN.report_outputs()["tables"]
        ],
        figures=[
            report(f, caption=caption(f), category="Figures")
            for f in PLAN.report_outputs()["figures"]
        ],
        appendix=[
            report(
                f,
                caption="../report/appendix.rst",
                category="Appendix: every training image",
            )
            for f in PLAN.report_outputs()["appendix"]
        ],
    log:
        f"{OUT}/logs/report.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=60,
        mem_mb=8000,
    params:
        cfg=section("report"),
        evaluate=section("evaluate", skip=EVALUATE_STUDIES),
        code=code("report build"),
        out=lambda w, output: os.path.dirname(output.metrics),
    shell:
        cli("report build")
        + " --target {input.target} --plain {input.plain} --restored {input.restored} --matches {input.matches} --coverage {input.coverage} --out-dir {params.out} > {log} 2>&1"
