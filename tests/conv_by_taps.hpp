#pragma once
// The definition of a 3x3, stride-1, pad-1 convolution and of its gradients, written as a sum
// over the nine taps of (weights of one tap) x (the images shifted by that tap), with Eigen's
// matrix products: it shares no code with vgg's kernels, and is fast enough to check layers of
// 512 channels, where kernels::conv3x3_reference's loops would take minutes.
#include <cstddef>
#include <vector>

#include <Eigen/Core>

namespace vgg::testing {

using row_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct conv_by_taps {
    std::size_t in_channels, out_channels, height, width, batch;

    std::size_t pixels() const { return height * width; }

    /// [channels, batch * pixels]: image n's channel c at column n * pixels + (i * width + j) holds
    /// images[n][c][i + dy][j + dx], or 0 outside the image.
    row_matrix shifted(const float* images, std::size_t channels, int dy, int dx) const
    {
        row_matrix s =
            row_matrix::Zero(static_cast<Eigen::Index>(channels), static_cast<Eigen::Index>(batch * pixels()));
        for (std::size_t n = 0; n < batch; ++n)
            for (std::size_t c = 0; c < channels; ++c)
                for (std::size_t i = 0; i < height; ++i) {
                    const long from_row = static_cast<long>(i) + dy;
                    if (from_row < 0 || from_row >= static_cast<long>(height))
                        continue;
                    for (std::size_t j = 0; j < width; ++j) {
                        const long from_column = static_cast<long>(j) + dx;
                        if (from_column < 0 || from_column >= static_cast<long>(width))
                            continue;
                        s(static_cast<Eigen::Index>(c), static_cast<Eigen::Index>(n * pixels() + i * width + j)) =
                            images[((n * channels + c) * height + static_cast<std::size_t>(from_row)) * width +
                                   static_cast<std::size_t>(from_column)];
                    }
                }
        return s;
    }

    /// weight[o][c][tap] as an [out, in] matrix.
    row_matrix tap_weights(const float* weight, std::size_t tap) const
    {
        row_matrix w(static_cast<Eigen::Index>(out_channels), static_cast<Eigen::Index>(in_channels));
        for (std::size_t o = 0; o < out_channels; ++o)
            for (std::size_t c = 0; c < in_channels; ++c)
                w(static_cast<Eigen::Index>(o), static_cast<Eigen::Index>(c)) = weight[(o * in_channels + c) * 9 + tap];
        return w;
    }

    /// [channels, batch * pixels] to NCHW.
    void to_images(const row_matrix& m, std::size_t channels, float* images) const
    {
        for (std::size_t n = 0; n < batch; ++n)
            for (std::size_t c = 0; c < channels; ++c)
                for (std::size_t p = 0; p < pixels(); ++p)
                    images[(n * channels + c) * pixels() + p] =
                        m(static_cast<Eigen::Index>(c), static_cast<Eigen::Index>(n * pixels() + p));
    }

    /// y = conv(x) + bias.
    std::vector<float> forward(const float* x, const float* weight, const float* bias) const
    {
        row_matrix y(static_cast<Eigen::Index>(out_channels), static_cast<Eigen::Index>(batch * pixels()));
        for (std::size_t o = 0; o < out_channels; ++o)
            y.row(static_cast<Eigen::Index>(o)).setConstant(bias[o]);
        for (std::size_t tap = 0; tap < 9; ++tap)
            y.noalias() += tap_weights(weight, tap) * shifted(x, in_channels, int(tap / 3) - 1, int(tap % 3) - 1);
        std::vector<float> images(batch * out_channels * pixels());
        to_images(y, out_channels, images.data());
        return images;
    }

    struct gradients {
        std::vector<float> dx, dweight, dbias;
    };

    /// The gradients of sum(dy * conv(x)) with respect to x, the weights and the bias.
    gradients backward(const float* x, const float* dy, const float* weight) const
    {
        gradients g{std::vector<float>(batch * in_channels * pixels()),
                    std::vector<float>(out_channels * in_channels * 9), std::vector<float>(out_channels)};
        const row_matrix dy_matrix = shifted(dy, out_channels, 0, 0);
        for (std::size_t o = 0; o < out_channels; ++o)
            g.dbias[o] = dy_matrix.row(static_cast<Eigen::Index>(o)).sum();
        // dx[c][i][j] = sum over taps and o of w[o][c][tap] dy[o][i - dy_tap][j - dx_tap]: the output
        // gradient shifted the other way.
        row_matrix dx_matrix =
            row_matrix::Zero(static_cast<Eigen::Index>(in_channels), static_cast<Eigen::Index>(batch * pixels()));
        for (std::size_t tap = 0; tap < 9; ++tap) {
            const int dy_tap = int(tap / 3) - 1, dx_tap = int(tap % 3) - 1;
            const row_matrix w = tap_weights(weight, tap);
            const row_matrix dw = dy_matrix * shifted(x, in_channels, dy_tap, dx_tap).transpose();
            for (std::size_t o = 0; o < out_channels; ++o)
                for (std::size_t c = 0; c < in_channels; ++c)
                    g.dweight[(o * in_channels + c) * 9 + tap] =
                        dw(static_cast<Eigen::Index>(o), static_cast<Eigen::Index>(c));
            dx_matrix.noalias() += w.transpose() * shifted(dy, out_channels, -dy_tap, -dx_tap);
        }
        to_images(dx_matrix, in_channels, g.dx.data());
        return g;
    }
};

} // namespace vgg::testing
