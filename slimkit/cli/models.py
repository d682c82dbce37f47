"""`slimkit models`: the registered models with input shape, parameters and forward MFLOPs.

Parameters and FLOPs are computed by building each model (TensorFlow is imported in ``run``, not
here, so that ``slimkit --help`` stays fast), never typed in.
"""

FLOPS_NOTE = ("MFLOPs: one forward pass of one image; a multiply-add counts as 2 FLOPs, counted in "
              "conv and fully connected layers (pooling, LRN, normalization, activations and bias "
              "additions are not counted).")


def configure(parser):
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="models to show (default: all registered models)")
    parser.add_argument("--num-classes", type=int, default=None, metavar="N",
                        help="count parameters and FLOPs for N classes (default: each model's own)")


def run(args):
    from slimkit.models.flops import count_flops
    from slimkit.models.registry import get_model, get_model_spec, list_models

    names = args.names or list_models()
    specs = [get_model_spec(name) for name in names]  # unknown names fail before any building
    rows = []
    for spec in specs:
        model = get_model(spec.name, num_classes=args.num_classes)
        flops = count_flops(model)
        mflops = f"{flops.mflops:,.2f}" + ("*" if flops.uncounted else "")
        shape = "x".join(str(d) for d in model.input.shape[1:])
        rows.append((spec.name, shape, f"{model.count_params():,}", mflops,
                     str(model.output.shape[-1]), spec.source))
    print(format_table(("model", "input", "parameters", "MFLOPs", "classes", "source"), rows))
    print()
    print(FLOPS_NOTE)
    if any(row[3].endswith("*") for row in rows):
        print("* some layers of this model are of a type not counted; the number is a lower bound.")
    return 0


def format_table(header, rows):
    """Left-aligned text columns, numbers right-aligned; one header line and a rule."""
    numeric = [all(_is_number(row[i]) for row in rows) for i in range(len(header))]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(cells):
        return "  ".join(str(c).rjust(w) if num else str(c).ljust(w)
                         for c, w, num in zip(cells, widths, numeric)).rstrip()

    return "\n".join([line(header), line("-" * w for w in widths), *(line(r) for r in rows)])


def _is_number(text):
    return text.rstrip("*").replace(",", "").replace(".", "", 1).isdigit()
