# report stage (paper 5, appendix): tables, figures, metrics JSON, DVC plot curves.


rule report:
    input:
        target=f"{OUT}/attack/target.pt",
        plain=f"{OUT}/evaluate/plain.h5",
        restored=expand(f"{OUT}/evaluate/restored/{{r}}.h5", r=RESTORERS),
        matches=expand(f"{OUT}/evaluate/match/{{m}}.h5", m=METHOD_NAMES),
        coverage=[f"{OUT}/dataset/coverage.json", f"{OUT}/dataset/coverage.csv"],
    output:
        PLAN.report_files(),
    params:
        cfg=section("report"),
        evaluate=section("evaluate"),
        code=code("report"),
        out=f"{OUT}/report",
    log:
        f"{OUT}/logs/report.log",
    threads: 1
    resources:
        runtime=60,
        mem_mb=8000,
    shell:
        cli("report build") + " --target {input.target} --plain {input.plain} --restored {input.restored} --matches {input.matches} --coverage {input.coverage} --out-dir {params.out} > {log} 2>&1"
