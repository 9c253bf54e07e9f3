#!/usr/bin/env python3
"""Converter failure modes: each error names the tensor or checkpoint option at fault.

Builds checkpoints from convert_fireredasr.expected_tensors() (no reference package needed),
breaks one thing each, and checks convert() raises ConvertError with the right name.
Run: python3 scripts/conformer/test_convert_fireredasr.py
"""

import argparse
import os
import sys
import tempfile
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import convert_fireredasr as cf  # noqa: E402

ARGS = dict(idim=80, odim=12, d_model=16, n_head=2, n_layers_enc=1, n_layers_dec=1, kernel_size=5,
            pe_maxlen=100, sos_id=3, eos_id=4, pad_id=2, residual_dropout=0.1, dropout_rate=0.1)


def write_model(d, args=None, mutate=None):
    args = dict(ARGS if args is None else args)
    sd = {}
    for k, shape in cf.expected_tensors({**ARGS, **args}).items():
        sd[k] = torch.zeros(1, 10, args["d_model"]) if shape is None else torch.randn(shape)
    sd["decoder.tgt_word_prj.weight"] = sd["decoder.tgt_word_emb.weight"]
    if mutate:
        mutate(sd)
    torch.save({"args": argparse.Namespace(**args), "model_state_dict": sd}, os.path.join(d, "model.pth.tar"))
    import kaldiio

    stats = np.ones((2, 81))
    stats[0, -1] = 10
    stats[1, :-1] = 5
    kaldiio.save_mat(os.path.join(d, "cmvn.ark"), stats)
    with open(os.path.join(d, "dict.txt"), "w") as f:
        for i in range(args["odim"]):
            f.write(f"t{i} {i}\n")
    with open(os.path.join(d, "x.model"), "wb") as f:
        f.write(b"")


class ConverterErrors(unittest.TestCase):
    def convert_err(self, **kw):
        with tempfile.TemporaryDirectory() as d:
            write_model(d, **kw)
            with self.assertRaises(cf.ConvertError) as cm:
                cf.convert(d, os.path.join(d, "out"))
            return str(cm.exception)

    def test_good_checkpoint_converts(self):
        with tempfile.TemporaryDirectory() as d:
            write_model(d)
            cfg = cf.convert(d, os.path.join(d, "out"))
            self.assertEqual(cfg["family"], "conformer_aed")
            self.assertTrue(os.path.exists(os.path.join(d, "out", "model.safetensors")))

    def test_causal_convolutions_are_recorded(self):
        with tempfile.TemporaryDirectory() as d:
            write_model(d)
            self.assertNotIn("causal_conv", cf.convert(d, os.path.join(d, "out")))
        with tempfile.TemporaryDirectory() as d:
            write_model(d, args={**ARGS, "causal_conv": True})
            self.assertTrue(cf.convert(d, os.path.join(d, "out"))["causal_conv"])

    def test_optional_ctc_head_is_exported(self):
        def add_ctc(sd):
            sd["ctc.weight"] = torch.randn(ARGS["odim"], ARGS["d_model"])
            sd["ctc.bias"] = torch.randn(ARGS["odim"])

        with tempfile.TemporaryDirectory() as d:
            write_model(d, mutate=add_ctc)
            cfg = cf.convert(d, os.path.join(d, "out"))
            self.assertTrue(cfg["ctc"])
            self.assertEqual(cfg["blank_id"], 0)

    def test_ctc_head_with_wrong_shape_is_named(self):
        def add_ctc(sd):
            sd["ctc.ctc_lo.weight"] = torch.randn(ARGS["odim"] + 1, ARGS["d_model"])
            sd["ctc.ctc_lo.bias"] = torch.randn(ARGS["odim"])

        e = self.convert_err(mutate=add_ctc)
        self.assertIn("ctc.ctc_lo.weight has shape [13, 16], expected [12, 16]", e)

    def test_missing_tensor_is_named(self):
        e = self.convert_err(mutate=lambda sd: sd.pop("encoder.layer_stack.0.mhsa.pos_bias_u"))
        self.assertIn("missing tensor(s) encoder.layer_stack.0.mhsa.pos_bias_u", e)

    def test_unexpected_tensor_is_named(self):
        e = self.convert_err(mutate=lambda sd: sd.__setitem__("encoder.ctc.weight", torch.zeros(3)))
        self.assertIn("unexpected tensor(s) encoder.ctc.weight", e)

    def test_wrong_shape_is_named(self):
        e = self.convert_err(mutate=lambda sd: sd.__setitem__("decoder.layer_stack.0.mlp.w_1.weight",
                                                               torch.zeros(16, 16)))
        self.assertIn("decoder.layer_stack.0.mlp.w_1.weight has shape [16, 16], expected [64, 16]", e)

    def test_unknown_option_is_named(self):
        e = self.convert_err(args={**ARGS, "use_ctc": True})
        self.assertIn("unknown option(s) use_ctc", e)

    def test_missing_option_is_named(self):
        args = dict(ARGS)
        del args["kernel_size"]
        e = self.convert_err(args=args)
        self.assertIn("missing option(s) kernel_size", e)

    def test_untied_output_projection_is_rejected(self):
        def untie(sd):
            sd["decoder.tgt_word_prj.weight"] = torch.randn(sd["decoder.tgt_word_emb.weight"].shape)

        e = self.convert_err(mutate=untie)
        self.assertIn("decoder.tgt_word_prj.weight", e)


if __name__ == "__main__":
    unittest.main()
