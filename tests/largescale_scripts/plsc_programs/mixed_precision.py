# Mixed precision with PLSC's defaults.
from plsc import Entry


def main():
    ins = Entry()
    ins.set_mixed_precision(True)
    ins.train()


if __name__ == "__main__":
    main()
