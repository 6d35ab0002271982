// VS Code extension for the .dnn language: starts `dnnc lsp` over stdio.
"use strict";

const path = require("path");
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;
let output;

function dnncCommand() {
  const config = vscode.workspace.getConfiguration("dnnc");
  let command = config.get("path") || "dnnc";
  const folders = vscode.workspace.workspaceFolders;
  if (folders && folders.length > 0) {
    command = command.replace(/\$\{workspaceFolder\}/g, folders[0].uri.fsPath);
  }
  if (command.startsWith("~/") && process.env.HOME) {
    command = path.join(process.env.HOME, command.slice(2));
  }
  const extraArgs = config.get("extraArgs") || [];
  return { command, args: ["lsp", ...extraArgs] };
}

async function start() {
  const { command, args } = dnncCommand();
  const executable = { command, args, transport: TransportKind.stdio };
  const serverOptions = { run: executable, debug: executable };
  const clientOptions = {
    documentSelector: [
      { scheme: "file", language: "dnn" },
      { scheme: "untitled", language: "dnn" },
    ],
    outputChannel: output,
    traceOutputChannel: output,
  };
  client = new LanguageClient("dnnc", "dnnc language server", serverOptions, clientOptions);
  try {
    await client.start();
  } catch (err) {
    const message =
      `Could not start \`${command} ${args.join(" ")}\`: ${err && err.message ? err.message : err}. ` +
      "Set `dnnc.path` to the dnnc binary (built with `cargo build -p dnnc`).";
    vscode.window.showErrorMessage(message, "Open Settings").then((choice) => {
      if (choice === "Open Settings") {
        vscode.commands.executeCommand("workbench.action.openSettings", "dnnc.path");
      }
    });
    client = undefined;
  }
}

async function stop() {
  if (client) {
    const c = client;
    client = undefined;
    try {
      await c.stop();
    } catch (_) {
      // The server may already be gone.
    }
  }
}

async function activate(context) {
  output = vscode.window.createOutputChannel("dnnc");
  context.subscriptions.push(output);
  context.subscriptions.push(
    vscode.commands.registerCommand("dnnc.restartServer", async () => {
      await stop();
      await start();
    }),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (e.affectsConfiguration("dnnc.path") || e.affectsConfiguration("dnnc.extraArgs")) {
        await stop();
        await start();
      }
    })
  );
  await start();
}

function deactivate() {
  return stop();
}

module.exports = { activate, deactivate };
