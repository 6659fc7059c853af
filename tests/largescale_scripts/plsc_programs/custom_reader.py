# Training on the program's own reader (PLSC's demo/custom_reader.py); the batching function
# stands in for paddle.batch.  argv: data dir, model save dir.
import sys

from plsc import Entry
from plsc.utils import jpeg_reader as reader


def batch(sample_reader, batch_size):
    def batched():
        items = []
        for sample in sample_reader():
            items.append(sample)
            if len(items) == batch_size:
                yield items
                items = []
        if items:
            yield items
    return batched


def main():
    ins = Entry()
    ins.set_model_save_dir(sys.argv[2])
    ins.set_dataset_dir(sys.argv[1])
    ins.set_train_epochs(1)
    ins.set_loss_type('arcface')
    train_reader = reader.arc_train(sys.argv[1], ins.num_classes)
    ins.train_reader = batch(train_reader, ins.train_batch_size)
    ins.train()


if __name__ == "__main__":
    main()
