-- dnnc language server for Neovim: `dnnc lsp` over stdio for `*.dnn` files.
--
-- Neovim 0.11+: put this file on your runtimepath (e.g. ~/.config/nvim/plugin/dnnc.lua)
-- or copy its contents into init.lua. Set `vim.g.dnnc_path` first if `dnnc` is not on
-- PATH, e.g. vim.g.dnnc_path = vim.fn.expand("~/src/dnnc/target/debug/dnnc").

-- Filetype: *.dnn files are `dnn`, with // comments. Neovim 0.7 reads `vim.filetype`
-- only when `do_filetype_lua` was set before it started, so there an autocommand does it.
if vim.fn.has("nvim-0.8") == 1 then
  vim.filetype.add({ extension = { dnn = "dnn" } })
else
  vim.cmd([[autocmd BufRead,BufNewFile *.dnn setfiletype dnn]])
end
vim.api.nvim_create_autocmd("FileType", {
  pattern = "dnn",
  callback = function()
    vim.bo.commentstring = "// %s"
    vim.bo.comments = "s1:/*,mb:*,ex:*/,:///,://"
  end,
})

local cmd = { vim.g.dnnc_path or "dnnc", "lsp" }

if vim.lsp.config then
  -- Neovim 0.11 and later.
  vim.lsp.config("dnnc", {
    cmd = cmd,
    filetypes = { "dnn" },
    root_markers = { "Cargo.toml", ".git" },
  })
  vim.lsp.enable("dnnc")
else
  -- Neovim 0.8 to 0.10, with the nvim-lspconfig plugin.
  local ok, configs = pcall(require, "lspconfig.configs")
  if not ok then
    vim.notify("dnnc: Neovim < 0.11 needs the nvim-lspconfig plugin", vim.log.levels.WARN)
    return
  end
  local util = require("lspconfig.util")
  if not configs.dnnc then
    configs.dnnc = {
      default_config = {
        cmd = cmd,
        filetypes = { "dnn" },
        root_dir = function(fname)
          -- `vim.fs` is 0.8's; 0.7 has `fnamemodify`.
          return util.root_pattern("Cargo.toml", ".git")(fname) or vim.fn.fnamemodify(fname, ":h")
        end,
        single_file_support = true,
      },
    }
  end
  require("lspconfig").dnnc.setup({})
end
