# Uploads the saved model to a remote file system after training.  argv: fs_name.
import sys

from plsc import Entry

if __name__ == "__main__":
    ins = Entry()
    ins.set_model_save_dir('./saved_model')
    ins.set_hdfs_info(sys.argv[1], "name,passwd", "some_dir")
    ins.train()
