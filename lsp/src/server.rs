//! The language server: LSP requests and notifications mapped onto the compiler's
//! database. Documents are synced in full; every request runs against the latest
//! text, and salsa recomputes only what an edit touched.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer};

use dnnc_sema::{file_diagnostics, RootDatabase, SourceFile};

use crate::analysis::{self, Target};
use crate::text;

pub struct State {
    pub db: RootDatabase,
    /// Open documents.
    pub docs: HashMap<PathBuf, SourceFile>,
    /// Where the embedded stdlib is written, so editors can open it.
    pub std_dir: PathBuf,
}

pub struct Backend {
    client: Client,
    state: Arc<Mutex<State>>,
    /// Bumped by every edit; a pending diagnostics run gives up if it changed.
    generation: Arc<AtomicU64>,
}

/// How long diagnostics wait after an edit, so that a burst of typing (and the
/// completion requests in between) is not held up by re-checking after every key.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// Where the standard library's sources are written for editors to open (go to
/// definition): a directory of this user's, not one shared in the temporary directory
/// — `$XDG_CACHE_HOME/dnnc/VERSION` or `~/.cache/dnnc/VERSION`, else
/// `$TMPDIR/dnnc-USER-VERSION`.
fn std_cache_dir() -> PathBuf {
    let version = env!("CARGO_PKG_VERSION");
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    match cache {
        Some(c) => c.join("dnnc").join(version),
        None => {
            let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
            std::env::temp_dir().join(format!("dnnc-{user}-{version}"))
        }
    }
}

/// Writes the standard library's modules under `dir/std`, the directory private to
/// this user (mode 700) and the files read-only (an editor opening one should not
/// invite edits that `dnnc` would ignore). Failures leave go-to-definition into `std`
/// without a file, nothing else.
fn write_std(dir: &std::path::Path) {
    let std = dir.join("std");
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&std);
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        for (m, src) in dnnc_sema::stdlib::MODULES {
            let p = std.join(format!("{m}.dnn"));
            if std::fs::read_to_string(&p).ok().as_deref() != Some(src) {
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
                let _ = std::fs::write(&p, src);
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444));
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = std::fs::create_dir_all(&std);
        for (m, src) in dnnc_sema::stdlib::MODULES {
            let p = std.join(format!("{m}.dnn"));
            if std::fs::read_to_string(&p).ok().as_deref() != Some(src) {
                let _ = std::fs::write(&p, src);
            }
        }
    }
}

impl Backend {
    pub fn new(client: Client) -> Backend {
        let std_dir = std_cache_dir();
        write_std(&std_dir);
        Backend {
            client,
            state: Arc::new(Mutex::new(State {
                db: RootDatabase::for_editor(),
                docs: HashMap::new(),
                std_dir,
            })),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes diagnostics for every open document after the debounce delay, unless
    /// another edit arrives first.
    fn schedule_diagnostics(&self) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let (state, counter, client) = (
            self.state.clone(),
            self.generation.clone(),
            self.client.clone(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(DEBOUNCE).await;
            if counter.load(Ordering::SeqCst) != generation {
                return;
            }
            let batches: Vec<(Uri, Vec<Diagnostic>)> = {
                let st = state.lock().unwrap_or_else(|e| e.into_inner());
                st.docs
                    .iter()
                    .filter_map(|(p, f)| Some((Uri::from_file_path(p)?, diagnostics(&st, *f))))
                    .collect()
            };
            for (uri, diags) in batches {
                client.publish_diagnostics(uri, diags, None).await;
            }
        });
    }
}

/// The filesystem path of a file's display name (`<std>/nn.dnn` maps to the cache).
fn path_of(st: &State, f: SourceFile) -> PathBuf {
    let p = f.path(&st.db);
    match p.strip_prefix("<std>") {
        Ok(rest) => st.std_dir.join("std").join(rest),
        Err(_) => p.clone(),
    }
}

fn uri_of(st: &State, f: SourceFile) -> Option<Uri> {
    Uri::from_file_path(path_of(st, f))
}

fn file_named(st: &State, name: &str) -> Option<SourceFile> {
    st.db
        .files()
        .into_iter()
        .find(|f| &**f.name(&st.db) == name)
}

/// LSP diagnostics for `f`: those whose primary label is in `f`.
pub fn diagnostics(st: &State, f: SourceFile) -> Vec<Diagnostic> {
    let text = f.text(&st.db);
    let name = f.name(&st.db).clone();
    file_diagnostics(&st.db, f)
        .iter()
        .filter(|d| d.primary.file == name)
        .map(|d| {
            let mut message = d.message.clone();
            if !d.primary.message.is_empty() {
                message.push_str(&format!("\n{}", d.primary.message));
            }
            for n in &d.notes {
                message.push_str(&format!("\nnote: {n}"));
            }
            if let Some(h) = &d.help {
                message.push_str(&format!("\nhelp: {h}"));
            }
            let related: Vec<DiagnosticRelatedInformation> = d
                .secondary
                .iter()
                .filter_map(|l| {
                    let lf = file_named(st, &l.file)?;
                    Some(DiagnosticRelatedInformation {
                        location: Location {
                            uri: uri_of(st, lf)?,
                            range: text::range(lf.text(&st.db), l.span),
                        },
                        message: l.message.clone(),
                    })
                })
                .collect();
            Diagnostic {
                range: text::range(text, d.primary.span),
                severity: Some(if d.is_error() {
                    DiagnosticSeverity::ERROR
                } else {
                    DiagnosticSeverity::WARNING
                }),
                code: Some(NumberOrString::String(d.code.0.to_string())),
                source: Some("dnnc".into()),
                message,
                related_information: (!related.is_empty()).then_some(related),
                ..Diagnostic::default()
            }
        })
        .collect()
}

fn doc(st: &State, uri: &Uri) -> Option<SourceFile> {
    let p = uri.to_file_path()?;
    st.docs
        .get(p.as_ref())
        .copied()
        .or_else(|| st.db.open(&p).ok())
}

fn location(st: &State, f: SourceFile, span: dnnc_diagnostics::Span) -> Option<Location> {
    Some(Location {
        uri: uri_of(st, f)?,
        range: text::range(f.text(&st.db), span),
    })
}

fn markdown(value: String) -> Hover {
    Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value,
        }),
        range: None,
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, _: InitializeParams) -> Result<InitializeResult> {
        Ok(InitializeResult {
            server_info: Some(ServerInfo {
                name: "dnnc".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            capabilities: ServerCapabilities {
                text_document_sync: Some(TextDocumentSyncCapability::Kind(
                    TextDocumentSyncKind::FULL,
                )),
                completion_provider: Some(CompletionOptions {
                    resolve_provider: Some(true),
                    // Not space: editors that complete on every trigger character
                    // (Neovim 0.11's autotrigger) would pop a menu after each word.
                    trigger_characters: Some(
                        [".", ":", "(", ","].iter().map(|s| s.to_string()).collect(),
                    ),
                    ..CompletionOptions::default()
                }),
                hover_provider: Some(HoverProviderCapability::Simple(true)),
                definition_provider: Some(OneOf::Left(true)),
                references_provider: Some(OneOf::Left(true)),
                rename_provider: Some(OneOf::Left(true)),
                document_symbol_provider: Some(OneOf::Left(true)),
                inlay_hint_provider: Some(OneOf::Left(true)),
                signature_help_provider: Some(SignatureHelpOptions {
                    trigger_characters: Some(vec!["(".into(), ",".into()]),
                    ..SignatureHelpOptions::default()
                }),
                document_formatting_provider: Some(OneOf::Left(true)),
                ..ServerCapabilities::default()
            },
            ..InitializeResult::default()
        })
    }

    async fn shutdown(&self) -> Result<()> {
        Ok(())
    }

    async fn did_open(&self, p: DidOpenTextDocumentParams) {
        if let Some(path) = p.text_document.uri.to_file_path() {
            let mut st = self.lock();
            let path = path.into_owned();
            let f = st.db.add_text(&path, &p.text_document.text);
            st.db.set_text(f, p.text_document.text);
            st.docs.insert(path, f);
        }
        self.schedule_diagnostics();
    }

    async fn did_change(&self, p: DidChangeTextDocumentParams) {
        let Some(change) = p.content_changes.into_iter().last() else {
            return;
        };
        if let Some(path) = p.text_document.uri.to_file_path() {
            let mut st = self.lock();
            let path = path.into_owned();
            let f = match st.docs.get(&path) {
                Some(f) => *f,
                None => st.db.add_text(&path, ""),
            };
            st.db.set_text(f, change.text);
            st.docs.insert(path, f);
        }
        self.schedule_diagnostics();
    }

    async fn did_close(&self, p: DidCloseTextDocumentParams) {
        let uri = p.text_document.uri;
        if let Some(path) = uri.to_file_path() {
            self.lock().docs.remove(path.as_ref());
        }
        self.client.publish_diagnostics(uri, Vec::new(), None).await;
    }

    async fn completion(&self, p: CompletionParams) -> Result<Option<CompletionResponse>> {
        let st = self.lock();
        let Some(f) = doc(&st, &p.text_document_position.text_document.uri) else {
            return Ok(None);
        };
        let offset = text::offset(f.text(&st.db), p.text_document_position.position);
        Ok(Some(CompletionResponse::Array(
            crate::completion::complete(&st.db, f, offset),
        )))
    }

    async fn completion_resolve(&self, item: CompletionItem) -> Result<CompletionItem> {
        let st = self.lock();
        let files = st.db.files();
        Ok(crate::completion::resolve(&st.db, &files, item))
    }

    async fn hover(&self, p: HoverParams) -> Result<Option<Hover>> {
        let st = self.lock();
        let pos = p.text_document_position_params;
        let Some(f) = doc(&st, &pos.text_document.uri) else {
            return Ok(None);
        };
        let offset = text::offset(f.text(&st.db), pos.position);
        if let Some((name, _, Target::Item { file, index })) =
            analysis::definition(&st.db, f, offset)
        {
            let (sig, doc) = analysis::describe_item(&st.db, file, index);
            let mut v = format!("```dnn\n{}\n```", if sig.is_empty() { name } else { sig });
            if let Some(d) = doc {
                v.push_str(&format!("\n\n{d}"));
            }
            return Ok(Some(markdown(v)));
        }
        if let Some(v) = analysis::parameter_hover(&st.db, f, offset) {
            return Ok(Some(markdown(v)));
        }
        if let Some((span, ty)) = dnnc_sema::type_at(&st.db, f, offset as u32) {
            let snippet = &f.text(&st.db)[span.range()];
            let shown = if snippet.len() <= 40 && !snippet.contains('\n') {
                format!("{snippet}: {ty}")
            } else {
                ty.to_string()
            };
            let mut h = markdown(format!("```dnn\n{shown}\n```"));
            h.range = Some(text::range(f.text(&st.db), span));
            return Ok(Some(h));
        }
        Ok(None)
    }

    async fn goto_definition(
        &self,
        p: GotoDefinitionParams,
    ) -> Result<Option<GotoDefinitionResponse>> {
        let st = self.lock();
        let pos = p.text_document_position_params;
        let Some(f) = doc(&st, &pos.text_document.uri) else {
            return Ok(None);
        };
        let offset = text::offset(f.text(&st.db), pos.position);
        let Some((_, _, t)) = analysis::definition(&st.db, f, offset) else {
            return Ok(None);
        };
        let (df, span) = t.location(&st.db);
        Ok(location(&st, df, span).map(GotoDefinitionResponse::Scalar))
    }

    async fn references(&self, p: ReferenceParams) -> Result<Option<Vec<Location>>> {
        let st = self.lock();
        let pos = p.text_document_position;
        let Some(f) = doc(&st, &pos.text_document.uri) else {
            return Ok(None);
        };
        let offset = text::offset(f.text(&st.db), pos.position);
        let Some((name, _, t)) = analysis::definition(&st.db, f, offset) else {
            return Ok(None);
        };
        let files = st.db.files();
        let mut refs = analysis::references(&st.db, &files, &t, &name);
        if !p.context.include_declaration {
            let decl = t.location(&st.db);
            refs.retain(|r| *r != decl);
        }
        Ok(Some(
            refs.into_iter()
                .filter_map(|(rf, s)| location(&st, rf, s))
                .collect(),
        ))
    }

    async fn rename(&self, p: RenameParams) -> Result<Option<WorkspaceEdit>> {
        let new = p.new_name;
        let valid = new.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && new.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(tower_lsp_server::jsonrpc::Error::invalid_params(format!(
                "`{new}` is not an identifier"
            )));
        }
        let st = self.lock();
        let pos = p.text_document_position;
        let Some(f) = doc(&st, &pos.text_document.uri) else {
            return Ok(None);
        };
        let offset = text::offset(f.text(&st.db), pos.position);
        let Some((name, _, t)) = analysis::definition(&st.db, f, offset) else {
            return Ok(None);
        };
        let (df, _) = t.location(&st.db);
        if df.path(&st.db).starts_with("<std>") {
            return Err(tower_lsp_server::jsonrpc::Error::invalid_params(
                "standard library names cannot be renamed",
            ));
        }
        let files = st.db.files();
        let mut changes: HashMap<Uri, Vec<TextEdit>> = HashMap::new();
        for (rf, s) in analysis::references(&st.db, &files, &t, &name) {
            if let Some(loc) = location(&st, rf, s) {
                changes.entry(loc.uri).or_default().push(TextEdit {
                    range: loc.range,
                    new_text: new.clone(),
                });
            }
        }
        Ok(Some(WorkspaceEdit {
            changes: Some(changes),
            ..WorkspaceEdit::default()
        }))
    }

    async fn document_symbol(
        &self,
        p: DocumentSymbolParams,
    ) -> Result<Option<DocumentSymbolResponse>> {
        let st = self.lock();
        let Some(f) = doc(&st, &p.text_document.uri) else {
            return Ok(None);
        };
        Ok(Some(DocumentSymbolResponse::Nested(
            crate::symbols::symbols(&st.db, f),
        )))
    }

    async fn inlay_hint(&self, p: InlayHintParams) -> Result<Option<Vec<InlayHint>>> {
        let st = self.lock();
        let Some(f) = doc(&st, &p.text_document.uri) else {
            return Ok(None);
        };
        let t = f.text(&st.db);
        let (from, to) = (text::offset(t, p.range.start), text::offset(t, p.range.end));
        Ok(Some(crate::symbols::inlay_hints(&st.db, f, from, to)))
    }

    async fn signature_help(&self, p: SignatureHelpParams) -> Result<Option<SignatureHelp>> {
        let st = self.lock();
        let pos = p.text_document_position_params;
        let Some(f) = doc(&st, &pos.text_document.uri) else {
            return Ok(None);
        };
        let t = f.text(&st.db);
        let offset = text::offset(t, pos.position);
        let from = analysis::item_at(&st.db, f, offset).map_or(0, |i| {
            dnnc_sema::scope::parse(&st.db, f).module.items[i as usize]
                .span
                .start as usize
        });
        let Some((callee, _, commas)) = crate::completion::open_call(t, from, offset) else {
            return Ok(None);
        };
        let Some((name, params)) = crate::completion::callee_params(&st.db, f, offset, &callee)
        else {
            return Ok(None);
        };
        let labels: Vec<String> = params.iter().map(|(_, l)| l.clone()).collect();
        let sig = SignatureInformation {
            label: format!("{name}({})", labels.join(", ")),
            documentation: None,
            parameters: Some(
                labels
                    .into_iter()
                    .map(|l| ParameterInformation {
                        label: ParameterLabel::Simple(l),
                        documentation: None,
                    })
                    .collect(),
            ),
            active_parameter: Some(commas as u32),
        };
        Ok(Some(SignatureHelp {
            signatures: vec![sig],
            active_signature: Some(0),
            active_parameter: Some(commas as u32),
        }))
    }

    async fn formatting(&self, p: DocumentFormattingParams) -> Result<Option<Vec<TextEdit>>> {
        let st = self.lock();
        let Some(f) = doc(&st, &p.text_document.uri) else {
            return Ok(None);
        };
        let t = f.text(&st.db);
        match dnnc_syntax::format::format(t) {
            Ok(new) if new != *t => {
                let end = text::position(t, t.len());
                Ok(Some(vec![TextEdit {
                    range: Range {
                        start: Position {
                            line: 0,
                            character: 0,
                        },
                        end,
                    },
                    new_text: new,
                }]))
            }
            _ => Ok(Some(Vec::new())),
        }
    }
}
