"""The sample plugin's contract tests, written as a plugin author writes them: prismrag's kit
(`prismrag.testing`) checks the encoder, and pytest loads the kit's fixtures by itself."""

from __future__ import annotations

import pytest

from prismrag.testing import check_encoder

# A plugin's own tests import it plainly (`from prismrag_sample import plugin`). This copy lives in
# prismrag's tree, whose test run does not install it: tests/test_cli.py installs it and runs this.
plugin = pytest.importorskip("prismrag_sample.plugin", reason="the sample plugin is not installed here")
CharNgramEncoder = plugin.CharNgramEncoder


def test_char_ngrams_meets_the_encoder_contract():
    check_encoder(CharNgramEncoder)
    check_encoder(CharNgramEncoder(CharNgramEncoder.Params(dimension=64, n=2)))


def test_the_plugin_module_registers_the_encoder(prism_registry):
    registry = prism_registry(plugin)
    assert registry.get("encoder", "char-ngrams") is CharNgramEncoder


class WrongDimension(CharNgramEncoder):
    """Reports twice the dimension its vectors have."""

    def dimension(self) -> int:
        return 2 * self.params.dimension


def test_a_wrong_dimension_fails_naming_the_check():
    with pytest.raises(AssertionError, match="^check_encoder: dimension: ") as info:
        check_encoder(WrongDimension)
    assert str(info.value).endswith("encoder 'char-ngrams' declares 512 but returned 256 for text documents")
