"""``oodscope export``: a saved model's whole score as an ONNX graph (:mod:`oodscope.export`)."""

from __future__ import annotations

import click

from oodscope.detectors import load


@click.command()
@click.argument("model", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True, help="Export format.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The ONNX file to write (its sidecar: OUT.json).")
def export(model: str, fmt: str, out: str) -> None:
    """Export MODEL's score to one ONNX graph with a dynamic batch axis, plus a JSON sidecar
    (threshold, input size, normalisation). `oodscope score` and `serve` accept the ONNX file
    and run it with onnxruntime. Needs the onnx extra: pip install 'oodscope[onnx]'.
    """
    from oodscope.export import export_onnx, identity

    detector = load(model)
    meta = export_onnx(detector, out, weights_sha256=identity(model, detector)["weights_sha256"])
    click.echo(f"exported {detector.method} ({meta['image_size'][0]}x{meta['image_size'][1]}, {meta['channels']} channel(s)) "
               f"to {out} and {out}.json")
