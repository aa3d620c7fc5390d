"""Validate an Argo Workflows manifest against Hera's Argo models (PyPI
`hera`, generated from Argo's own API schema), for tests/plan_cli.rs.

The models ignore keys they do not know, so a misspelt field would pass;
the manifest is therefore also dumped back from the models and compared
with the input: any key the models dropped is reported as unknown.
"""

import sys

import yaml
from hera.workflows.models import Workflow


def lost(given, kept, path):
    if isinstance(given, dict):
        if not isinstance(kept, dict):
            return [path]
        out = []
        for k, v in given.items():
            if k not in kept:
                out.append(f"{path}.{k}")
            else:
                out.extend(lost(v, kept[k], f"{path}.{k}"))
        return out
    if isinstance(given, list):
        if not isinstance(kept, list) or len(kept) != len(given):
            return [path]
        out = []
        for i, (g, k) in enumerate(zip(given, kept)):
            out.extend(lost(g, k, f"{path}[{i}]"))
        return out
    return []


doc = yaml.safe_load(open(sys.argv[1]))
workflow = Workflow.model_validate(doc)
kept = workflow.model_dump(by_alias=True, exclude_unset=True, mode="json")
unknown = lost(doc, kept, "$")
if unknown:
    print("unknown fields: " + ", ".join(unknown))
    sys.exit(1)
print(f"ok: {workflow.kind} with {len(workflow.spec.templates)} templates")
