from nucseg.study.health import describe_flags, fold_flags


def test_a_model_that_learned_is_not_flagged():
    assert fold_flags({"predicted_fraction": 0.25}, [0.68, 0.45, 0.40]) == ""


def test_one_class_and_a_stuck_loss_are_flagged():
    assert fold_flags({"predicted_fraction": 0.0}, [0.67, 0.62, 0.688]) == "one-class;loss-stuck"  # PangNet's collapse
    assert fold_flags({"predicted_fraction": 0.99}, [0.7, 0.3]) == "one-class"
    assert fold_flags({"predicted_fraction": 0.2}, [0.69, 0.68]) == "loss-stuck"
    assert "one class" in describe_flags("one-class") and "first epoch" in describe_flags("one-class;loss-stuck")
