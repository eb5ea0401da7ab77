#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>

#include "vgg/core/tensor.hpp"

namespace vgg {

/// What one evaluation of the loss reports about a batch.
struct loss_result {
    float loss = 0.f;        ///< mean cross-entropy over the batch
    std::size_t correct = 0; ///< samples whose largest logit is the label
};

/// nn.CrossEntropyLoss() (mean reduction) on logits, with its gradient with respect to the
/// logits written to `grad` (softmax minus one-hot, divided by the batch size).
template <std::size_t Classes>
loss_result softmax_cross_entropy(const tensor<shape<Classes>>& logits, std::span<const int> labels,
                                  tensor<shape<Classes>>& grad)
{
    const std::size_t batch = logits.batch();
    if (batch == 0)
        throw std::invalid_argument("softmax_cross_entropy: the batch is empty (0 samples)");
    if (labels.size() != batch)
        throw std::invalid_argument("softmax_cross_entropy: " + std::to_string(labels.size()) +
                                    " labels for a batch of " + std::to_string(batch));
    grad.resize(batch);
    double total = 0;
    loss_result result;
    for (std::size_t n = 0; n < batch; ++n) {
        const int label = labels[n];
        if (label < 0 || static_cast<std::size_t>(label) >= Classes)
            throw std::out_of_range("softmax_cross_entropy: label " + std::to_string(label) +
                                    " is not a class in [0, " + std::to_string(Classes) + ")");
        const float* z = logits.sample(n);
        float* g = grad.sample(n);
        const std::size_t best = static_cast<std::size_t>(std::max_element(z, z + Classes) - z);
        result.correct += best == static_cast<std::size_t>(label);
        // Shift by the largest logit so exp never overflows.
        const float top = z[best];
        double sum = 0;
        for (std::size_t k = 0; k < Classes; ++k)
            sum += std::exp(static_cast<double>(z[k] - top));
        const double log_sum = std::log(sum);
        total += log_sum - static_cast<double>(z[label] - top);
        for (std::size_t k = 0; k < Classes; ++k) {
            const double probability = std::exp(static_cast<double>(z[k] - top) - log_sum);
            g[k] =
                static_cast<float>((probability - (k == static_cast<std::size_t>(label) ? 1.0 : 0.0)) / double(batch));
        }
    }
    result.loss = static_cast<float>(total / double(batch));
    return result;
}

} // namespace vgg
