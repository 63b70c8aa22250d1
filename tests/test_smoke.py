from modelyard import Yard


def test_run_roundtrip(yard: Yard) -> None:
    with yard.start_run("exp", name="r1") as run:
        run.log_params({"depth": 5})
        run.log_metric("r2", 0.9)
    rec = yard.get_run(run.run_id)
    assert rec.info.status == "finished"
    assert rec.params == {"depth": "5"}
    assert rec.metrics["r2"].value == 0.9
