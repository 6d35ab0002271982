-- A real Neovim (0.11, headless) with the shipped configuration (lsp/editors/neovim/
-- dnnc.lua) driving `dnnc lsp` as a user would: opens a copy of the MNIST example,
-- types `fc1.` in `forward` and asks for completion, hovers on `hidden`, jumps to the
-- definition of `Dense`, breaks a line and waits for the diagnostic, formats.
--
--   nvim --headless --clean -l lsp/tests/editors/neovim.lua DNNC REPO OUT.json
--
-- Writes what each request answered to OUT.json (lsp/tests/editors/run.py checks it)
-- and exits 0, or 1 with the reason if a step got no answer at all.

local dnnc, repo, out = arg[1], arg[2], arg[3]
vim.g.dnnc_path = dnnc
dofile(repo .. "/lsp/editors/neovim/dnnc.lua")

local results = {}
-- A scratch copy (the test edits it), next to the example so its data paths resolve.
local src = repo .. "/examples/mnist_mlp.dnn"
local file = repo .. "/examples/.editor-test-mlp.dnn"

local function fail(why)
  io.stderr:write("neovim.lua: " .. why .. "\n")
  os.remove(file)
  os.exit(1)
end
vim.fn.writefile(vim.fn.readfile(src), file)
vim.cmd.edit(file)
results.filetype = vim.bo.filetype

local client
vim.wait(15000, function()
  client = vim.lsp.get_clients({ bufnr = 0 })[1]
  return client ~= nil and client.initialized
end, 50)
if not client then fail("the dnnc client did not attach") end
results.client = client.name

-- Line and column (0-based) of the first match of `pat` after `after`.
local function find(pat, after)
  for i, l in ipairs(vim.api.nvim_buf_get_lines(0, 0, -1, false)) do
    local s, e = l:find(pat, 1, true)
    if s and (not after or i > after) then return i - 1, s - 1, e end
  end
  fail("no `" .. pat .. "` in the buffer")
end

-- Neovim sends edits to the server after a short debounce: let them go first.
local function settle()
  vim.wait(400, function() return false end, 20)
end

local function request(method, line, col)
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(0) },
    position = { line = line, character = col },
  }
  local r, err = client:request_sync(method, params, 10000, 0)
  if not r then fail(method .. ": no answer (" .. tostring(err) .. ")") end
  if r.err then fail(method .. ": " .. vim.inspect(r.err)) end
  return r.result
end

-- Completion right after `fc1.`, typed as `forward`'s body (the line does not parse
-- yet: nothing after the dot).
local fl = find("x |> fc1")
local body = vim.api.nvim_buf_get_lines(0, fl, fl + 1, false)[1]
vim.api.nvim_buf_set_lines(0, fl, fl + 1, false, { "        fc1." })
settle()
local probe = vim.api.nvim_buf_get_lines(0, fl, fl + 1, false)[1]
local items = request("textDocument/completion", fl, #probe)
items = items and (items.items or items) or {}
results.completion = vim.tbl_map(function(i) return i.label end, items)
results.completion_details = vim.tbl_map(function(i) return i.detail or "" end, items)
vim.api.nvim_buf_set_lines(0, fl, fl + 1, false, { body })
settle()

-- Hover on `hidden` where `fc2 = Dense(hidden, hidden)` uses it.
local hl, hc = find("fc2  = Dense(hidden")
local hover = request("textDocument/hover", hl, hc + #"fc2  = Dense(")
results.hover = hover and hover.contents and (hover.contents.value or vim.inspect(hover.contents)) or vim.NIL

-- Go to the definition of `Dense`.
local dl, dc = find("fc1  = Dense")
local def = request("textDocument/definition", dl, dc + #"fc1  = ")
if def and def.uri then def = { def } end
results.definition = def and def[1] and (def[1].uri or def[1].targetUri) or vim.NIL

-- A type error: the diagnostic arrives after the edit.
local bl = find("head = Dense(hidden, 10)")
vim.api.nvim_buf_set_lines(0, bl, bl + 1, false, { "    head = Dense(hidden, 10, 3)" })
vim.wait(10000, function() return #vim.diagnostic.get(0, { lnum = bl }) > 0 end, 50)
results.diagnostics = vim.tbl_map(function(d)
  return { line = d.lnum, message = d.message, code = d.code or vim.NIL }
end, vim.diagnostic.get(0))
vim.api.nvim_buf_set_lines(0, bl, bl + 1, false, { "    head = Dense(hidden, 10)" })
settle()

-- Formatting puts a badly indented line back.
local il = find("batch      = 128")
vim.api.nvim_buf_set_lines(0, il, il + 1, false, { "  batch =    128" })
settle()
vim.lsp.buf.format({ timeout_ms = 10000 })
results.formatted = vim.api.nvim_buf_get_lines(0, il, il + 1, false)[1]

local f = assert(io.open(out, "w"))
f:write(vim.json.encode(results))
f:close()
os.remove(file)
os.exit(0)
