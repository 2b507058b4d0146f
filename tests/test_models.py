"""Every registered model: shape, backward, no NaN, parameter count near the seed's."""

import pytest
import torch

from mnistlab.errors import UserError
from mnistlab.models import REFERENCE_PARAMS, count_parameters, create_model, list_models


def test_registry_lists_the_three_architectures():
    assert {"simple", "deeper", "resnet"} <= set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_no_nan(name):
    torch.manual_seed(0)
    model = create_model(name)
    x = torch.randn(4, 1, 28, 28, requires_grad=True)
    logits = model(x)
    assert logits.shape == (4, 10)
    logits.logsumexp(1).mean().backward()
    assert torch.isfinite(logits).all()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert x.grad.abs().sum() > 0


def looks_normalised(out: torch.Tensor) -> bool:
    """Whether every row is a probability vector or a log-probability vector (what logits are not)."""
    ones = torch.ones(len(out))
    probabilities = bool((out >= 0).all()) and torch.allclose(out.sum(1), ones, atol=1e-3)
    log_probabilities = bool((out <= 0).all()) and torch.allclose(out.exp().sum(1), ones, atol=1e-3)
    return probabilities or log_probabilities


@pytest.mark.parametrize("name", list_models())
def test_returns_logits_not_probabilities(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(8, 1, 28, 28) * 3
    logits = model(x)
    assert not looks_normalised(logits)
    # the check itself catches a model that ends in softmax or log_softmax
    assert looks_normalised(logits.softmax(1)) and looks_normalised(logits.log_softmax(1))


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_parameter_count_within_five_percent(name):
    n = count_parameters(create_model(name))
    assert abs(n - REFERENCE_PARAMS[name]) / REFERENCE_PARAMS[name] <= 0.05, n


def test_simple_matches_the_seed_exactly():
    assert count_parameters(create_model("simple")) == 93_322


@pytest.mark.parametrize("name", list_models())
def test_other_input_sizes_and_classes(name):
    model = create_model(name, num_classes=3, image_size=32)
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 3)


def test_unknown_model_names_the_choices():
    with pytest.raises(UserError, match="simple"):
        create_model("lenet-9000")


@pytest.mark.parametrize("name", list_models())
def test_weights_round_trip_through_safetensors(name, tmp_path):
    """Every model saves to safetensors (no tensor registered twice) and loads back identically."""
    from mnistlab import runs

    torch.manual_seed(0)
    model = create_model(name).eval()
    runs.save_weights(tmp_path, model)
    twin = create_model(name).eval()
    from safetensors.torch import load_file

    twin.load_state_dict(load_file(str(tmp_path / runs.WEIGHTS)))
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(model(x), twin(x))
