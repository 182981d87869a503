"""Batch normalization inside real networks: the kit's third assignment (spec:
shared/spec/batchnorm-network.md). Students write BatchNorm1d as an nn.Module with the
train()/eval() convention, train a small classifier with it on the breast cancer data, and watch
it keep a 100-layer network in range."""
from gradekit.contract import Assignment, Question

ASSIGNMENT = Assignment(
    name="batchnorm_network",
    title="Batch normalization inside real networks",
    defines=("BatchNorm1d", "Model", "train_model", "DeepMLP", "answer_running_mean", "answer_running_var"),
    questions=(
        Question(
            "question-1",
            "`fc1` and `fc2` have no bias, while `fc3` has one. Why can a linear layer that feeds a batch "
            "normalization layer do without its bias? Think of what happens to a constant added to every "
            "sample of a feature, in the forward pass and in the gradient (the derivation of the backward "
            "pass in the previous assignment helps).",
            "Batch normalization subtracts the batch mean of each feature, so a bias $b$ added by the linear "
            "layer comes out again at once: $(x + b) - \\operatorname{mean}(x + b) = x - \\operatorname{mean}(x)$, "
            "and the variance is unchanged too. The output does not depend on $b$, so its gradient is zero "
            "(the gradient reaching the normalization's input sums to zero over the batch for each "
            "feature) and it never learns anything. The shift $\\beta$ applied after the normalization takes "
            "the bias's role; keeping both only wastes parameters. `fc3` feeds the sigmoid directly, so its "
            "bias matters.",
        ),
        Question(
            "question-2",
            "Why does the layer normalise with running averages in eval mode instead of the statistics of "
            "the batch it is given? What would happen to a prediction for a single sample otherwise?",
            "At test time a prediction must depend on the sample alone, not on which other samples happen "
            "to share its batch, and it must be the same every time. The running averages estimate the "
            "mean and variance of the training distribution and stay fixed after training, so each sample "
            "is normalised the same way in any batch. With batch statistics a single sample is its own "
            "mean and its variance is 0: every feature normalises to 0, the output is $\\beta$ whatever "
            "the input, and the model predicts the same class for every sample.",
        ),
        Question(
            "question-3",
            "Describe the standard deviations recorded by `DeepMLP` over its 100 layers, and compare them "
            "with those of the same stack without batch normalization (the experiment cell) for different "
            "scales of the initial weights. What does batch normalization do to the network's sensitivity "
            "to initialisation?",
            "With batch normalization every layer's output after ReLU has a standard deviation close to "
            "0.58 (that of a rectified standard normal), from the first layer to the last. Without it the "
            "scale is multiplied at every layer by a factor set by the weights' scale: with N(0, 1) weights "
            "(a factor of about 11 for 256 inputs) the activations overflow to inf and then NaN within a "
            "few dozen layers, with too small weights they shrink towards 0 (vanishing signals and "
            "gradients), and only a carefully chosen scale such as Kaiming's $\\sqrt{2/n}$ keeps them in "
            "range. Batch normalization re-standardises every layer's input whatever the weights' scale, "
            "so the network becomes far less sensitive to initialisation (and to the learning rate), and "
            "deep stacks train.",
        ),
    ),
)
