"""Flag validators of the trainer: bad values are rejected with a message that says what to fix."""
import pytest
from absl import flags as absl_flags

import flags as trainer_flags
import train_image_classifiers as trainer

FLAGS = trainer_flags.FLAGS


@pytest.fixture
def parse():
    def _parse(*args):
        FLAGS.unparse_flags()
        FLAGS(["train_image_classifiers.py"] + list(args))
        return FLAGS
    yield _parse
    FLAGS.unparse_flags()


@pytest.mark.parametrize("args,needle", [
    (["--batch_size=0"], "batch_size must be > 0"),
    (["--batch_size=-4"], "batch_size must be > 0"),
    (["--learning_rate=0"], "learning_rate must be > 0"),
    (["--task_type=finetune"], "needs --model_dir"),
    (["--task_type=warmstart"], "task_type"),
    (["--label_smoothing=1.5"], "label_smoothing"),
    (["--protocol=grpc+verbs"], "PAISoar's transport"),
    (["--use_fp16", "--use_bf16"], "exclude each other"),
    (["--stop_at_step=-1"], "stop_at_step must be >= 0"),
    (["--allreduce_op=sum"], "allreduce_op"),
])
def test_parse_time_validators(parse, args, needle):
    with pytest.raises(absl_flags.Error, match=needle):
        parse(*args)


@pytest.mark.parametrize("args,needle", [
    (["--model_name=resnet_v9"], "unknown model_name 'resnet_v9'; valid names: .*lenet"),
    (["--model_name=lenet", "--dataset_name=svhn"], "unknown dataset_name 'svhn'; valid names: .*cifar10"),
    (["--model_name=lenet", "--optimizer=lamb"], "unknown optimizer 'lamb'; valid: adadelta"),
    (["--model_name=lenet", "--hooks=StopAtStepHook,FooHook"], "unknown hook.*FooHook"),
    (["--model_name=lenet", "--preprocessing_name=fancy"], "unknown preprocessing_name"),
    (["--model_name=lenet", "--loss_scale=big"], "loss_scale must be a number"),
    (["--model_name=lenet", "--loss_scale=0.5"], "loss_scale must be >= 1"),
    (["--model_name=lenet", "--dataset_name=digits", "--num_classes=7"],
     "num_classes=7 but dataset digits has 10"),
    (["--model_name=lenet", "--dataset_name=digits", "--dataset_split_name=dev"],
     "no split 'dev'"),
    (["--model_name=lenet", "--stop_at_step=0"], "mock data never ends"),
    (["--model_name=lenet", "--hooks=LoggingTensorHook"], "mock data never ends"),
])
def test_registry_checks(parse, args, needle):
    parse(*args)
    with pytest.raises(ValueError, match=needle):
        trainer.check_flags()


def test_defaults_are_fastnn_defaults(parse):
    f = parse()
    assert (f.dataset_name, f.model_name, f.optimizer, f.batch_size) == (
        "mock", "inception_resnet_v2", "rmsprop", 32)
    assert (f.learning_rate, f.learning_rate_decay_factor, f.weight_decay) == (0.01, 0.94, 4e-5)
    assert f.hooks == "StopAtStepHook,ProfilerHook,LoggingTensorHook,CheckpointSaverHook"
    assert f.enable_paisoar is True and f.stop_at_step == 100

