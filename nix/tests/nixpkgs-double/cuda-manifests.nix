# TEST DOUBLE data: the parts of NVIDIA's redistrib manifests that nixpkgs
# keeps under pkgs/development/cuda-modules/_cuda/manifests/ and that the
# double uses: release_date, release_label, release_product and each
# component's version (the per-platform archive entries are left out). Values
# copied from the manifests read at NixOS/nixpkgs (commit per file below).
{
  cuda = {
    # cuda/redistrib_12.9.1.json at 1181bb22b6c4ab780f2aed2619e6410f58bd3316
    "12.9.1" = {
      release_date = "2025-06-05";
      release_label = "12.9.1";
      release_product = "cuda";
      cuda_cccl.version = "12.9.27";
      cuda_cudart.version = "12.9.79";
      cuda_cupti.version = "12.9.79";
      cuda_nvcc.version = "12.9.86";
      cuda_nvdisasm.version = "12.9.88";
      cuda_nvml_dev.version = "12.9.79";
      cuda_nvprune.version = "12.9.82";
      cuda_nvrtc.version = "12.9.86";
      cuda_nvtx.version = "12.9.79";
      cuda_profiler_api.version = "12.9.79";
      libcublas.version = "12.9.1.4";
      libcufft.version = "11.4.1.4";
      libcurand.version = "10.3.10.19";
      libcusolver.version = "11.7.5.82";
      libcusparse.version = "12.5.10.65";
      libnvjitlink.version = "12.9.86";
    };
    # cuda/redistrib_13.0.2.json at ee7ded0ba23b65480c0f6823045ae0ee2f320806
    "13.0.2" = {
      release_date = "2025-10-09";
      release_label = "13.0.2";
      release_product = "cuda";
      cuda_cccl.version = "13.0.85";
      cuda_crt.version = "13.0.88";
      cuda_cudart.version = "13.0.96";
      cuda_cupti.version = "13.0.85";
      cuda_nvcc.version = "13.0.88";
      cuda_nvdisasm.version = "13.0.85";
      cuda_nvml_dev.version = "13.0.87";
      cuda_nvprune.version = "13.0.85";
      cuda_nvrtc.version = "13.0.88";
      cuda_nvtx.version = "13.0.85";
      cuda_profiler_api.version = "13.0.85";
      libcublas.version = "13.1.0.3";
      libcufft.version = "12.0.0.61";
      libcurand.version = "10.4.0.35";
      libcusolver.version = "12.0.4.66";
      libcusparse.version = "12.6.3.3";
      libnvjitlink.version = "13.0.88";
    };
  };
  cudnn = {
    # cudnn/redistrib_9.13.0.json at cd53001dd5e68cbaff2a561ad202299c21a3044b
    "9.13.0" = {
      release_date = "2025-09-04";
      release_label = "9.13.0";
      release_product = "cudnn";
      cudnn.version = "9.13.0.50";
    };
  };
}
