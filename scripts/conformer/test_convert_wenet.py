#!/usr/bin/env python3
"""convert_wenet.py: a good WeNet experiment converts (BatchNorm folded exactly), and each
broken one fails with a message naming the tensor or train.yaml option at fault.

Builds WeNet-layout state dicts by name (no reference package needed).
Run: python3 scripts/conformer/test_convert_wenet.py
"""

import json
import os
import sys
import tempfile
import unittest

import numpy as np
import torch
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import convert_wenet as cw  # noqa: E402
from convert_fireredasr import read_safetensors  # noqa: E402

D, H, F, K, V = 16, 2, 32, 5, 10
ENC = dict(output_size=D, attention_heads=H, linear_units=F, num_blocks=1, input_layer="conv2d",
           cnn_module_kernel=K, macaron_style=True, use_cnn_module=True, pos_enc_layer_type="rel_pos",
           selfattention_layer_type="rel_selfattn", activation_type="swish", dropout_rate=0.1,
           use_dynamic_chunk=False)
DEC = dict(attention_heads=H, linear_units=F, num_blocks=1, dropout_rate=0.1)


def wenet_state_dict():
    sd = {}

    def lin(p, o, i, bias=True):
        sd[p + ".weight"] = torch.randn(o, i)
        if bias:
            sd[p + ".bias"] = torch.randn(o)

    def ln(p, n=D):
        sd[p + ".weight"] = torch.randn(n)
        sd[p + ".bias"] = torch.randn(n)

    sd["encoder.global_cmvn.mean"] = torch.zeros(80)
    sd["encoder.global_cmvn.istd"] = torch.ones(80)
    sd["encoder.embed.conv.0.weight"] = torch.randn(D, 1, 3, 3)
    sd["encoder.embed.conv.0.bias"] = torch.randn(D)
    sd["encoder.embed.conv.2.weight"] = torch.randn(D, D, 3, 3)
    sd["encoder.embed.conv.2.bias"] = torch.randn(D)
    lin("encoder.embed.out.0", D, D * 19)
    p = "encoder.encoders.0"
    for w in ("linear_q", "linear_k", "linear_v", "linear_out"):
        lin(f"{p}.self_attn.{w}", D, D)
    lin(f"{p}.self_attn.linear_pos", D, D, bias=False)
    sd[f"{p}.self_attn.pos_bias_u"] = torch.randn(H, D // H)
    sd[f"{p}.self_attn.pos_bias_v"] = torch.randn(H, D // H)
    for ff in ("feed_forward", "feed_forward_macaron"):
        lin(f"{p}.{ff}.w_1", F, D)
        lin(f"{p}.{ff}.w_2", D, F)
    sd[f"{p}.conv_module.pointwise_conv1.weight"] = torch.randn(2 * D, D, 1)
    sd[f"{p}.conv_module.pointwise_conv1.bias"] = torch.randn(2 * D)
    sd[f"{p}.conv_module.depthwise_conv.weight"] = torch.randn(D, 1, K)
    sd[f"{p}.conv_module.depthwise_conv.bias"] = torch.randn(D)
    ln(f"{p}.conv_module.norm")
    sd[f"{p}.conv_module.norm.running_mean"] = torch.randn(D)
    sd[f"{p}.conv_module.norm.running_var"] = torch.rand(D) + 0.5
    sd[f"{p}.conv_module.norm.num_batches_tracked"] = torch.tensor(7)
    sd[f"{p}.conv_module.pointwise_conv2.weight"] = torch.randn(D, D, 1)
    sd[f"{p}.conv_module.pointwise_conv2.bias"] = torch.randn(D)
    for n in ("norm_ff", "norm_mha", "norm_ff_macaron", "norm_conv", "norm_final"):
        ln(f"{p}.{n}")
    ln("encoder.after_norm")
    sd["decoder.embed.0.weight"] = torch.randn(V, D)
    ln("decoder.after_norm")
    lin("decoder.output_layer", V, D)
    q = "decoder.decoders.0"
    for att in ("self_attn", "src_attn"):
        for w in ("linear_q", "linear_k", "linear_v", "linear_out"):
            lin(f"{q}.{att}.{w}", D, D)
    lin(f"{q}.feed_forward.w_1", F, D)
    lin(f"{q}.feed_forward.w_2", D, F)
    for n in ("norm1", "norm2", "norm3"):
        ln(f"{q}.{n}")
    lin("ctc.ctc_lo", V, D)
    return sd


def write_exp(d, mutate_sd=None, mutate_yaml=None, cmvn=True):
    sd = wenet_state_dict()
    if mutate_sd:
        mutate_sd(sd)
    torch.save(sd, os.path.join(d, "final.pt"))
    y = {"input_dim": 80, "output_dim": V, "encoder": "conformer", "encoder_conf": dict(ENC),
         "decoder": "transformer", "decoder_conf": dict(DEC), "model_conf": {"ctc_weight": 0.3}}
    if mutate_yaml:
        mutate_yaml(y)
    with open(os.path.join(d, "train.yaml"), "w") as f:
        yaml.safe_dump(y, f)
    if cmvn:
        with open(os.path.join(d, "global_cmvn"), "w") as f:
            json.dump({"mean_stat": [0.0] * 80, "var_stat": [10.0] * 80, "frame_num": 10}, f)
    with open(os.path.join(d, "units.txt"), "w") as f:
        units = ["<blank>", "<unk>"] + [f"▁T{i}" for i in range(V - 3)] + ["<sos/eos>"]
        for i, u in enumerate(units):
            f.write(f"{u} {i}\n")
    return sd


class WenetConverter(unittest.TestCase):
    def convert_err(self, **kw):
        with tempfile.TemporaryDirectory() as d:
            write_exp(d, **kw)
            with self.assertRaises(cw.ConvertError) as cm:
                cw.convert(d, os.path.join(d, "out"))
            return str(cm.exception)

    def test_good_experiment_converts(self):
        with tempfile.TemporaryDirectory() as d:
            write_exp(d)
            cfg = cw.convert(d, os.path.join(d, "out"))
            self.assertEqual(cfg["source"], "wenet")
            self.assertFalse(cfg["rel_shift"])  # WeNet: no rel_shift
            self.assertTrue(cfg["ctc"])
            self.assertEqual((cfg["sos_id"], cfg["eos_id"], cfg["blank_id"]), (V - 1, V - 1, 0))
            t = read_safetensors(os.path.join(d, "out", "model.safetensors"))
            self.assertNotIn("encoder.layer_stack.0.conv.batch_norm.weight", t)

    def test_batch_norm_folding_matches_conv_then_batch_norm(self):
        with tempfile.TemporaryDirectory() as d:
            sd = write_exp(d)
            out = os.path.join(d, "out")
            cw.convert(d, out)
            t = read_safetensors(os.path.join(out, "model.safetensors"))
            p = "encoder.encoders.0.conv_module."
            conv = torch.nn.Conv1d(D, D, K, padding=K // 2, groups=D)
            conv.weight.data = sd[p + "depthwise_conv.weight"]
            conv.bias.data = sd[p + "depthwise_conv.bias"]
            bn = torch.nn.BatchNorm1d(D).eval()
            bn.weight.data, bn.bias.data = sd[p + "norm.weight"], sd[p + "norm.bias"]
            bn.running_mean, bn.running_var = sd[p + "norm.running_mean"], sd[p + "norm.running_var"]
            folded = torch.nn.Conv1d(D, D, K, padding=K // 2, groups=D)
            folded.weight.data = torch.from_numpy(t["encoder.layer_stack.0.conv.depthwise_conv.weight"])
            folded.bias.data = torch.from_numpy(t["encoder.layer_stack.0.conv.depthwise_conv.bias"])
            x = torch.randn(1, D, 20)
            with torch.no_grad():
                self.assertTrue(torch.allclose(bn(conv(x)), folded(x), rtol=1e-5, atol=1e-5))

    def test_missing_tensor_is_named(self):
        e = self.convert_err(mutate_sd=lambda sd: sd.pop("encoder.encoders.0.self_attn.pos_bias_u"))
        self.assertIn("missing tensor(s) encoder.encoders.0.self_attn.pos_bias_u", e)

    def test_missing_batch_norm_statistics_are_named(self):
        e = self.convert_err(mutate_sd=lambda sd: sd.pop("encoder.encoders.0.conv_module.norm.running_var"))
        self.assertIn("encoder.encoders.0.conv_module.norm.running_var", e)

    def test_unexpected_tensor_is_named(self):
        e = self.convert_err(mutate_sd=lambda sd: sd.__setitem__("encoder.encoders.0.extra.weight", torch.zeros(3)))
        self.assertIn("unexpected tensor(s) encoder.encoders.0.extra.weight", e)

    def test_tensor_of_a_missing_layer_is_unexpected(self):
        def add_layer(sd):
            sd["decoder.decoders.1.norm1.weight"] = torch.zeros(D)

        e = self.convert_err(mutate_sd=add_layer)
        self.assertIn("decoder.decoders.1.norm1.weight", e)

    def test_wrong_shape_is_named(self):
        e = self.convert_err(mutate_sd=lambda sd: sd.__setitem__("decoder.decoders.0.feed_forward.w_1.weight",
                                                                   torch.zeros(D, D)))
        self.assertIn("decoder.decoders.0.feed_forward.w_1.weight has shape [16, 16]", e)

    def test_unknown_option_is_named(self):
        e = self.convert_err(mutate_yaml=lambda y: y["encoder_conf"].__setitem__("use_sdpa_magic", True))
        self.assertIn("encoder_conf.use_sdpa_magic", e)

    def test_unsupported_option_value_is_named(self):
        e = self.convert_err(mutate_yaml=lambda y: y["encoder_conf"].__setitem__("input_layer", "conv2d2"))
        self.assertIn("encoder_conf.input_layer = 'conv2d2'", e)

    def test_causal_model_converts_with_causal_convolutions(self):
        with tempfile.TemporaryDirectory() as d:
            write_exp(d, mutate_yaml=lambda y: y["encoder_conf"].__setitem__("causal", True))
            self.assertTrue(cw.convert(d, os.path.join(d, "out"))["causal_conv"])

    def test_even_kernel_needs_causal_convolutions(self):
        def even(sd):
            sd["encoder.encoders.0.conv_module.depthwise_conv.weight"] = torch.randn(D, 1, K + 1)

        def even_yaml(y):
            y["encoder_conf"]["cnn_module_kernel"] = K + 1

        e = self.convert_err(mutate_sd=even, mutate_yaml=even_yaml)
        self.assertIn("cnn_module_kernel 6 must be odd", e)
        with tempfile.TemporaryDirectory() as d:
            write_exp(d, mutate_sd=even,
                      mutate_yaml=lambda y: (even_yaml(y), y["encoder_conf"].__setitem__("causal", True)))
            cfg = cw.convert(d, os.path.join(d, "out"))
            self.assertEqual((cfg["kernel_size"], cfg["causal_conv"]), (K + 1, True))

    def test_chunk_trained_model_is_rejected(self):
        e = self.convert_err(mutate_yaml=lambda y: y["encoder_conf"].__setitem__("static_chunk_size", 16))
        self.assertIn("encoder_conf.static_chunk_size", e)

    def test_output_dim_mismatch_names_the_embedding(self):
        e = self.convert_err(mutate_yaml=lambda y: y.__setitem__("output_dim", V + 1))
        self.assertIn("decoder.embed.0.weight has shape [10, 16]", e)

    def test_units_must_match_output_dim(self):
        with tempfile.TemporaryDirectory() as d:
            write_exp(d)
            with open(os.path.join(d, "units.txt"), "a") as f:
                f.write("extra 10\n")
            with self.assertRaises(cw.ConvertError) as cm:
                cw.convert(d, os.path.join(d, "out"))
            self.assertIn("11 tokens but output_dim is 10", str(cm.exception))

    def test_cmvn_json_must_agree_with_checkpoint_buffers(self):
        def shift(sd):
            sd["encoder.global_cmvn.mean"] = torch.ones(80)

        e = self.convert_err(mutate_sd=shift)
        self.assertIn("global_cmvn", e)


if __name__ == "__main__":
    unittest.main()
