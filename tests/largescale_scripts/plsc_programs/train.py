# The quick start's training program: one epoch on ./train_data (label.txt and images),
# checkpoints in ./saved_model, verification on ./train_data/lfw.bin after the epoch.
from plsc import Entry

if __name__ == "__main__":
    ins = Entry()
    ins.set_train_epochs(1)
    ins.set_model_save_dir("./saved_model")
    ins.train()
