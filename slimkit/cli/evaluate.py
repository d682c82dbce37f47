"""`slimkit eval`: not built yet (see README, "Status"). Says so instead of pretending."""


def configure(parser):
    parser.add_argument("args", nargs="*", help="reserved")


def run(args):
    raise ValueError("'slimkit eval' is not available in this version yet; "
                     "see README.md, section Status, for what works today")
