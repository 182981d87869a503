# %% imports
import math

import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import scale
from torch import nn


# %% data
# The Wisconsin breast cancer data: 569 tumours, 30 measurements each, label 1 = benign.
# Every feature is standardised (mean 0, standard deviation 1), then 20% is held out for testing.
cancer = load_breast_cancer()
features = scale(cancer.data)
x_train, x_test, y_train, y_test = train_test_split(features, cancer.target, test_size=0.2, random_state=0)
x_train = torch.tensor(x_train, dtype=torch.float32)
x_test = torch.tensor(x_test, dtype=torch.float32)
y_train = torch.tensor(y_train, dtype=torch.float32).reshape(-1, 1)
y_test = torch.tensor(y_test, dtype=torch.float32).reshape(-1, 1)
print(f"training: {tuple(x_train.shape)}, test: {tuple(x_test.shape)}, "
      f"benign in training: {y_train.mean().item():.0%}")


# %% batchnorm1d-class
class BatchNorm1d(nn.Module):
    def __init__(self, num_features, momentum=0.9, eps=1e-5):
        super().__init__()
        self.num_features = num_features
        self.momentum = momentum
        self.eps = eps

        # PART 1: the learnable scale gamma (ones) and shift beta (zeros), one value per feature,
        # registered so that model.parameters() and optimizers see them.
        # UPDATE:
        ### BEGIN SOLUTION
        ### PLACEHOLDER self.gamma = torch.ones(1)
        ### PLACEHOLDER self.beta = torch.zeros(1)
        self.gamma = nn.Parameter(torch.ones(num_features))
        self.beta = nn.Parameter(torch.zeros(num_features))
        ### END SOLUTION

        # PART 2: the running mean and running variance, both starting at zeros. They are state
        # saved with the model, not learnable: register them as buffers.
        # UPDATE:
        ### BEGIN SOLUTION
        ### PLACEHOLDER self.running_mean = torch.ones(1)
        ### PLACEHOLDER self.running_var = torch.ones(1)
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.zeros(num_features))
        ### END SOLUTION

    def forward(self, x):
        if self.training:
            # PART 3: the mean and the biased variance of each feature over the batch.
            # UPDATE:
            ### BEGIN SOLUTION
            ### PLACEHOLDER mean = torch.zeros(1)
            ### PLACEHOLDER var = torch.ones(1)
            mean = x.mean(dim=0)
            var = x.var(dim=0, unbiased=False)
            ### END SOLUTION

            # PART 4: update the running statistics, momentum weighting the old value:
            # running = momentum * running + (1 - momentum) * batch statistic.
            # Autograd must not record this update.
            # UPDATE:
            ### BEGIN SOLUTION
            ### PLACEHOLDER pass
            with torch.no_grad():
                self.running_mean.mul_(self.momentum).add_((1 - self.momentum) * mean)
                self.running_var.mul_(self.momentum).add_((1 - self.momentum) * var)
            ### END SOLUTION
        else:
            mean, var = self.running_mean, self.running_var

        # PART 5: normalise with (mean, var), then scale by gamma and shift by beta.
        # UPDATE:
        ### BEGIN SOLUTION
        ### PLACEHOLDER out = torch.zeros(1)
        out = self.gamma * (x - mean) / torch.sqrt(var + self.eps) + self.beta
        ### END SOLUTION
        return out


# %% model-class
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        # PART 6: the layers, under exactly these names: fc1 (30 -> 20) and fc2 (20 -> 10) without
        # bias, each followed by your BatchNorm1d (bn1, bn2), and fc3 (10 -> 1).
        # UPDATE:
        ### BEGIN SOLUTION
        ### PLACEHOLDER self.fc1 = None
        ### PLACEHOLDER self.bn1 = None
        ### PLACEHOLDER self.fc2 = None
        ### PLACEHOLDER self.bn2 = None
        ### PLACEHOLDER self.fc3 = None
        self.fc1 = nn.Linear(30, 20, bias=False)
        self.bn1 = BatchNorm1d(20)
        self.fc2 = nn.Linear(20, 10, bias=False)
        self.bn2 = BatchNorm1d(10)
        self.fc3 = nn.Linear(10, 1)
        ### END SOLUTION

    def forward(self, x):
        # PART 7: fc1 -> bn1 -> tanh -> fc2 -> bn2 -> tanh -> fc3 -> sigmoid.
        # UPDATE:
        ### BEGIN SOLUTION
        ### PLACEHOLDER out = torch.zeros(len(x), 1)
        out = torch.tanh(self.bn1(self.fc1(x)))
        out = torch.tanh(self.bn2(self.fc2(out)))
        out = torch.sigmoid(self.fc3(out))
        ### END SOLUTION
        return out


# %% train-model
def train_model(model, x_train, y_train, steps=100, batch_size=50, lr=0.01, seed=0):
    g = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for step in range(steps):
        # PART 8: the rows of this step's batch: the first batch_size entries of a random
        # permutation of all the rows, drawn with torch.randperm and the generator g.
        # UPDATE:
        ### BEGIN SOLUTION
        ### PLACEHOLDER rows = torch.arange(batch_size)
        rows = torch.randperm(len(x_train), generator=g)[:batch_size]
        ### END SOLUTION

        # PART 9: the binary cross-entropy summed over the batch, its gradients, and one plain
        # gradient descent step on every parameter of the model (learning rate lr).
        # UPDATE:
        ### BEGIN SOLUTION
        ### PLACEHOLDER loss = torch.zeros(())
        loss = F.binary_cross_entropy(model(x_train[rows]), y_train[rows], reduction="sum")
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for parameter in model.parameters():
                parameter -= lr * parameter.grad
        ### END SOLUTION
        losses.append(loss.item())
    return losses


# %% train-and-evaluate
torch.manual_seed(0)
model = Model()
losses = train_model(model, x_train, y_train)
model.eval()
with torch.no_grad():
    accuracy = ((model(x_test) > 0.5).float() == y_test).float().mean().item()
print(f"loss: first step {losses[0]:.2f}, last step {losses[-1]:.2f}; test accuracy {accuracy:.3f}")


# %% deep-mlp
class DeepMLP(nn.Module):
    def __init__(self, num_hidden=256, num_layers=100):
        super().__init__()
        # PART 10: num_layers linear layers (num_hidden -> num_hidden, no bias) in `linears`, and
        # as many of your BatchNorm1d layers in `bns`, each an nn.ModuleList.
        # UPDATE:
        ### BEGIN SOLUTION
        ### PLACEHOLDER self.linears = nn.ModuleList()
        ### PLACEHOLDER self.bns = nn.ModuleList()
        self.linears = nn.ModuleList([nn.Linear(num_hidden, num_hidden, bias=False) for _ in range(num_layers)])
        self.bns = nn.ModuleList([BatchNorm1d(num_hidden) for _ in range(num_layers)])
        ### END SOLUTION
        self.stds = []

    def initialize(self):
        for linear in self.linears:
            # PART 11: Kaiming-normal initialisation of the weight (torch.nn.init).
            # UPDATE:
            ### BEGIN SOLUTION
            ### PLACEHOLDER pass
            nn.init.kaiming_normal_(linear.weight)
            ### END SOLUTION

    def forward(self, x):
        self.stds = []
        for linear, bn in zip(self.linears, self.bns):
            # PART 12: linear -> batch norm -> ReLU; then record the standard deviation of the
            # result, as a float, in self.stds.
            # UPDATE:
            ### BEGIN SOLUTION
            ### PLACEHOLDER pass
            x = torch.relu(bn(linear(x)))
            self.stds.append(x.std().item())
            ### END SOLUTION
        return x


# %% deep-experiment
def plain_stds(num_hidden=256, num_layers=100, weight_std=1.0):
    """The same stack without batch normalization: the std of each layer's output."""
    x, stds = torch.randn(16, num_hidden), []
    for _ in range(num_layers):
        x = torch.relu(x @ (torch.randn(num_hidden, num_hidden) * weight_std))
        stds.append(x.std().item())
    return stds


torch.manual_seed(0)
deep = DeepMLP()
deep.initialize()
deep(torch.randn(16, 256))
print("with batch norm, layers 1-3:", [round(s, 3) for s in deep.stds[:3]],
      " layers 98-100:", [round(s, 3) for s in deep.stds[-3:]])
for weight_std in (1.0, math.sqrt(2 / 256), 0.05):
    stds = plain_stds(weight_std=weight_std)
    print(f"without, weights N(0, {weight_std:.3g}^2): layers 1-3:", [f"{s:.3g}" for s in stds[:3]],
          " layers 98-100:", [f"{s:.3g}" for s in stds[-3:]])


# %% answers
# PART 13: the running mean and running variance of the second feature, as numbers.
# UPDATE:
### BEGIN SOLUTION
### PLACEHOLDER answer_running_mean = 0.0
### PLACEHOLDER answer_running_var = 0.0
# The feature is 2 in all three samples: batch mean 2, batch variance 0 (biased or not).
# Mean: 0 -> 0.7 * 0 + 0.3 * 2 = 0.6 -> 0.7 * 0.6 + 0.3 * 2 = 1.02.
# Variance: 1 -> 0.7 * 1 + 0.3 * 0 = 0.7 -> 0.7 * 0.7 = 0.49.
answer_running_mean = 1.02
answer_running_var = 0.49
### END SOLUTION
