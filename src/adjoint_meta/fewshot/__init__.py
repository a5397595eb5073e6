"""Few-shot classification: the estimators on a small CNN with cross-entropy, beside Prototypical Networks.

The rating and synthetic experiments use one model family (an MLP with a squared loss).  This
experiment asks whether what holds there holds for classification too: N-way K-shot tasks from
scikit-learn's handwritten digits (``digits``, bundled with the package, no download), with the
classes of the test tasks held out of meta-training, a small CNN (``cnn``) on the torch.func
backend, and Prototypical Networks (``protonet``: a metric-based learner with no inner loop) as
the baseline this task family expects.  ``run`` trains and evaluates one method and seed; the
summarize step tabulates accuracy against fine-tuning steps (docs/fewshot.md).
"""

PROTONET = "protonet"  # the method name of ProtoNet's rows in the outputs
CLASSES = 10  # the digits 0..9: scikit-learn's load_digits
