// Torch-side code of filtered_lrelu shared by the two drivers (cpu/ops_cpu.cpp, cuda/ops_cuda.cpp),
// in the manner of driver_common.h: the device-independent argument checks, the output allocation
// and the parameter struct, written once so both plugins reject the same calls with the same
// words. Uses torch types: only the .cpp drivers include it, never cuda/ops_cuda.cu.
#pragma once

#include <torch/extension.h>

#include "filtered_lrelu_core.h"
#include "upfirdn2d_core.h"

namespace sg {

// x's rank. The drivers call this between their device check and their dtype check.
inline void check_filtered_lrelu_x(const torch::Tensor& x) {
    TORCH_CHECK(x.dim() == 4, "filtered_lrelu: x must be 4-D [N, C, H, W], got shape ", x.sizes());
}

// One filtered_lrelu call, ready to run: p points into the operands (filters and b contiguous,
// possibly copies) and into y, all kept alive here.
struct FilteredLreluCall {
    torch::Tensor fu, fd, b, y;
    at::MemoryFormat format;      // y's memory format: the one x suggests
    FilteredLreluParams p{};      // zeros when y is empty (N or C is 0): nothing to run
};

inline torch::Tensor filtered_lrelu_filter(torch::Tensor f, const torch::Tensor& x, const char* name) {
    auto ftype = x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
    TORCH_CHECK((f.dim() == 1 || f.dim() == 2) && f.numel() >= 1, "filtered_lrelu: ", name,
                " must be a non-empty 1-D [taps] or 2-D [fh, fw] filter, got shape ", f.sizes());
    TORCH_CHECK(f.scalar_type() == ftype, "filtered_lrelu: ", name, " must be ", ftype, " for x of type ",
                x.scalar_type(), ", got ", f.scalar_type());
    TORCH_CHECK(f.device() == x.device(), "filtered_lrelu: ", name, " is on ", f.device(), ", x on ", x.device());
    return f.contiguous();
}

// The checks after the driver's (device, check_filtered_lrelu_x, x's dtype), the output and the
// parameters. b: [C] of x's dtype, or empty for none. clamp < 0: no clamp. Allocates y, so the
// CUDA driver calls it under its device guard.
inline FilteredLreluCall filtered_lrelu_prepare(const torch::Tensor& x, torch::Tensor fu, torch::Tensor fd,
                                                torch::Tensor b, int64_t up, int64_t down, int64_t padx0,
                                                int64_t padx1, int64_t pady0, int64_t pady1, double gain,
                                                double slope, double clamp, bool flip) {
    TORCH_CHECK(up >= 1 && down >= 1, "filtered_lrelu: up and down must be >= 1, got up=", up, ", down=", down);
    fu = filtered_lrelu_filter(fu, x, "fu");
    fd = filtered_lrelu_filter(fd, x, "fd");
    if (b.numel() > 0) {
        TORCH_CHECK(b.dim() == 1 && b.size(0) == x.size(1), "filtered_lrelu: b must be 1-D of size x.size(1) = ",
                    x.size(1), ", got shape ", b.sizes());
        TORCH_CHECK(b.scalar_type() == x.scalar_type(), "filtered_lrelu: b must have the dtype of x (",
                    x.scalar_type(), "), got ", b.scalar_type());
        TORCH_CHECK(b.device() == x.device(), "filtered_lrelu: b is on ", b.device(), ", x on ", x.device());
        b = b.contiguous();
    }
    int fuh = (int)fu.size(0), fuw = (int)fu.size(fu.dim() - 1);
    int fdh = (int)fd.size(0), fdw = (int)fd.size(fd.dim() - 1);
    int64_t zh = upfirdn2d_out_size(x.size(2), up, 1, pady0, pady1, fuh);
    int64_t zw = upfirdn2d_out_size(x.size(3), up, 1, padx0, padx1, fuw);
    int64_t outh = zh >= fdh ? upfirdn2d_out_size(zh, 1, down, 0, 0, fdh) : 0;
    int64_t outw = zw >= fdw ? upfirdn2d_out_size(zw, 1, down, 0, 0, fdw) : 0;
    TORCH_CHECK(outh >= 1 && outw >= 1, "filtered_lrelu: output would be empty: input ", x.sizes(), " with up=",
                up, ", down=", down, ", pad x=(", padx0, ", ", padx1, ") y=(", pady0, ", ", pady1, "), fu ", fu.sizes(),
                " and fd ", fd.sizes());

    auto format = x.suggest_memory_format();
    FilteredLreluCall call;
    call.fu = fu;
    call.fd = fd;
    call.b = b;
    call.format = format;
    call.y = torch::empty({x.size(0), x.size(1), outh, outw}, x.options().memory_format(format));
    if (call.y.numel() == 0) return call;

    const torch::Tensor& y = call.y;
    FilteredLreluParams& p = call.p;
    p.x = x.data_ptr();
    p.fu = fu.data_ptr();
    p.fd = fd.data_ptr();
    p.b = b.numel() ? b.data_ptr() : nullptr;
    p.y = y.data_ptr();
    p.n = x.size(0); p.c = x.size(1); p.inh = x.size(2); p.inw = x.size(3);
    p.zh = zh; p.zw = zw; p.outh = outh; p.outw = outw;
    p.xsn = x.stride(0); p.xsc = x.stride(1); p.xsh = x.stride(2); p.xsw = x.stride(3);
    p.ysn = y.stride(0); p.ysc = y.stride(1); p.ysh = y.stride(2); p.ysw = y.stride(3);
    p.up = (int)up; p.down = (int)down; p.padx0 = (int)padx0; p.pady0 = (int)pady0;
    p.fuh = fuh; p.fuw = fuw; p.fdh = fdh; p.fdw = fdw;
    p.fu_sep = fu.dim() == 1; p.fd_sep = fd.dim() == 1; p.flip = flip;
    p.gain = gain; p.slope = slope; p.clamp = clamp;
    return call;
}

}  // namespace sg
