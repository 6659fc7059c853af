# The quick start's verification program: the checkpoint of the first epoch on lfw.bin.
from plsc import Entry

if __name__ == "__main__":
    ins = Entry()
    ins.set_checkpoint_dir("./saved_model/0/")
    ins.test()
