{
  description = "ocamler-grpo: teach LLMs to write OCaml (SFT, then GRPO rewarded by the OCaml compiler)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f system);

      # What every shell has: Python + uv for the .venv, the OCaml toolchain the verifier runs,
      # bubblewrap for its sandbox, llama.cpp for GGUF export and serving.
      basePackages = pkgs: with pkgs; [
        python312
        uv
        gnumake
        git
        ocaml
        ocamlPackages.findlib
        bubblewrap
        util-linux # prlimit
        llama-cpp
        cmake
      ];

      shellHook = ''
        # The Makefile creates .venv and installs the Python packages on first use.
        export PYTHON=python3
        export HF_HUB_DISABLE_TELEMETRY=1
        echo "ocamler-grpo dev shell: $(ocamlc -version 2>/dev/null | sed 's/^/OCaml /'), $(python3 --version)"
        echo "  make help    # every target"
      '';
    in
    {
      devShells = forAll (system:
        let
          pkgs = import nixpkgs { inherit system; };
          cudaPkgs = import nixpkgs { inherit system; config = { allowUnfree = true; cudaSupport = true; }; };
        in
        {
          default = pkgs.mkShell {
            packages = basePackages pkgs ++ [ pkgs.chromium ];
            inherit shellHook;
          };

          # GPU training and vLLM: the CUDA toolkit next to the same tools (pip installs the
          # CUDA builds of torch and vllm into .venv with `pip install -e .[gpu]`).
          cuda = cudaPkgs.mkShell {
            packages = basePackages cudaPkgs ++ (with cudaPkgs.cudaPackages; [ cudatoolkit cudnn ]);
            shellHook = shellHook + ''
              export CUDA_HOME=${cudaPkgs.cudaPackages.cudatoolkit}
              export LD_LIBRARY_PATH=/run/opengl-driver/lib''${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
            '';
          };
        });
    };
}
