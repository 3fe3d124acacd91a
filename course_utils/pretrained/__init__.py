"""The course's cached training steps: models it trains itself, standing in for downloadable weights.

One module per chapter; each holds the training code of its datasets (the registry names the builder
and loader of each as "module:function") and the loader a chapter calls:

    ch04   fmnist8_body: tiny_resnet(w=16) pretrained on 8 Fashion-MNIST classes    (04_cnns)
    ch05   austen_lm, review_lm: ULMFiT's stages 1 and 2 (AWD-LSTM, fastai)         (05_nlp)
    ch09   fashion_cnn, fashion_mlp: the Fashion-MNIST models the chapter serves      (09_deploy)

The architectures they share with the chapters live in `course_utils.models`. Later chapters' modules
may import earlier ones, never the reverse. Every public name is re-exported here, so
`from course_utils.pretrained import fmnist8_body` works.
"""

from course_utils.pretrained.ch04 import (
    INFO_FILE,
    PRETRAIN_CLASSES,
    PRETRAIN_EPOCHS,
    PRETRAIN_PER_CLASS,
    PRETRAIN_WIDTH,
    WEIGHTS_FILE,
    accuracy_on,
    build_fmnist8_body,
    fmnist8_body,
    pretrain,
    pretrain_set,
    train_one_cycle,
)
from course_utils.pretrained.ch05 import (
    AUSTEN_LM_BOOKS,
    AUSTEN_LM_CONFIG,
    AUSTEN_LM_FILES,
    AUSTEN_LM_NAME,
    REVIEW_LM_FILES,
    REVIEW_LM_NAME,
    REVIEW_LM_WORDS,
    austen_lm,
    austen_paragraphs,
    build_austen_lm,
    build_review_lm,
    finetune_review_lm,
    load_austen_lm,
    pretrain_austen_lm,
    review_lm,
    review_lm_loaders,
    review_lm_text,
    save_austen_lm,
)

from course_utils.pretrained.ch09 import (
    CNN_FILE,
    MLP_FILE,
    TRAIN_SUBSET,
    build_fashion_models,
    build_model,
    fashion_cnn,
    fashion_mlp,
    fashion_test,
    train_fashion_model,
    train_subset,
)

__all__ = [
    "AUSTEN_LM_BOOKS",
    "AUSTEN_LM_CONFIG",
    "AUSTEN_LM_FILES",
    "AUSTEN_LM_NAME",
    "CNN_FILE",
    "INFO_FILE",
    "MLP_FILE",
    "PRETRAIN_CLASSES",
    "PRETRAIN_EPOCHS",
    "PRETRAIN_PER_CLASS",
    "PRETRAIN_WIDTH",
    "REVIEW_LM_FILES",
    "REVIEW_LM_NAME",
    "REVIEW_LM_WORDS",
    "TRAIN_SUBSET",
    "WEIGHTS_FILE",
    "accuracy_on",
    "austen_lm",
    "austen_paragraphs",
    "build_austen_lm",
    "build_fashion_models",
    "build_fmnist8_body",
    "build_model",
    "build_review_lm",
    "fashion_cnn",
    "fashion_mlp",
    "fashion_test",
    "finetune_review_lm",
    "fmnist8_body",
    "load_austen_lm",
    "pretrain",
    "pretrain_austen_lm",
    "pretrain_set",
    "review_lm",
    "review_lm_loaders",
    "review_lm_text",
    "save_austen_lm",
    "train_fashion_model",
    "train_one_cycle",
    "train_subset",
]
