"""Reads a TensorBoard log directory with the real tensorboard package and prints what it
holds as JSON: every scalar series ({tag: [[step, value], ...]}, EventAccumulator keeping all
of them), the hparams plugin's session-start hyper-parameters and experiment, and whether
torch.utils.tensorboard.summary.hparams encodes the same hyper-parameters into the same
messages. Used by tests/tensorboard.rs when KILN_PYTHON is set.

Run: .venv/bin/python scripts/tb_read.py LOGDIR
"""

import json
import math
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from torch.utils.tensorboard.summary import hparams as torch_hparams


def value_of(v):
    kind = v.WhichOneof("kind")
    if kind == "number_value":
        return v.number_value
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return v.bool_value
    return None


def plugin_message(ea, tag):
    content = ea.PluginTagToContent("hparams").get(tag)
    return None if content is None else plugin_data_pb2.HParamsPluginData.FromString(content)


def main():
    ea = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    scalars = {
        tag: [[e.step, e.value] for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]
    }
    out = {"scalars": scalars}
    ssi = plugin_message(ea, "_hparams_/session_start_info")
    exp = plugin_message(ea, "_hparams_/experiment")
    sei = plugin_message(ea, "_hparams_/session_end_info")
    if ssi is not None and exp is not None:
        hp = {k: value_of(v) for k, v in ssi.session_start_info.hparams.items()}
        out["hparams"] = hp
        out["hparam_infos"] = [[i.name, i.type] for i in exp.experiment.hparam_infos]
        out["metric_tags"] = [m.name.tag for m in exp.experiment.metric_infos]
        # torch's hparams() writes Python bools as numbers (it tests int before bool), so the
        # comparison covers the other values; bools are checked by type above.
        plain = {k: v for k, v in hp.items() if not isinstance(v, bool)}
        order = [i.name for i in exp.experiment.hparam_infos if i.name in plain]
        t_exp, t_ssi, _ = torch_hparams({k: plain[k] for k in order}, {m: 0 for m in out["metric_tags"]})
        t_ssi = plugin_data_pb2.HParamsPluginData.FromString(t_ssi.value[0].metadata.plugin_data.content)
        t_exp = plugin_data_pb2.HParamsPluginData.FromString(t_exp.value[0].metadata.plugin_data.content)
        ours_exp = plugin_data_pb2.HParamsPluginData()
        ours_exp.CopyFrom(exp)
        keep = [i for i in ours_exp.experiment.hparam_infos if i.name in plain]
        del ours_exp.experiment.hparam_infos[:]
        ours_exp.experiment.hparam_infos.extend(keep)
        ours_ssi = plugin_data_pb2.HParamsPluginData()
        ours_ssi.CopyFrom(ssi)
        for k in [k for k in ours_ssi.session_start_info.hparams if k not in plain]:
            del ours_ssi.session_start_info.hparams[k]
        out["torch_same_experiment"] = ours_exp == t_exp
        out["torch_same_session_start"] = ours_ssi == t_ssi
    if sei is not None:
        out["session_end_status"] = sei.session_end_info.status
    print(json.dumps(out, allow_nan=True))


if __name__ == "__main__":
    main()
