;;; dnn-mode.el --- Major mode for dnnc's .dnn files, with eglot -*- lexical-binding: t; -*-

;; Syntax highlighting and indentation for `.dnn' files (dnnc's declarative language
;; for deep-learning models and their training), and the `dnnc lsp' language server
;; for them through eglot (Emacs 29 has eglot built in; Emacs 28 needs the
;; `elpa-eglot' Debian package or eglot from GNU ELPA): diagnostics with tensor
;; shapes, completion, hover, go to definition, references, rename and formatting.
;;
;; Install: put this file on your `load-path' and add to your init file
;;
;;   (require 'dnn-mode)
;;   (add-hook 'dnn-mode-hook #'eglot-ensure)
;;
;; Set `dnn-dnnc-program' if `dnnc' is not on your PATH.

;;; Code:

(defgroup dnn nil
  "Editing .dnn files."
  :group 'languages)

(defcustom dnn-dnnc-program "dnnc"
  "The dnnc executable; `dnnc lsp' is the language server."
  :type 'string
  :group 'dnn)

(defcustom dnn-indent-offset 4
  "Indentation of a nested block, as `dnnc fmt' writes it."
  :type 'integer
  :group 'dnn)

(defvar dnn-mode-syntax-table
  (let ((st (make-syntax-table)))
    ;; `//' line comments (and `///' doc comments), `/* */' block comments.
    (modify-syntax-entry ?/ ". 124b" st)
    (modify-syntax-entry ?* ". 23" st)
    (modify-syntax-entry ?\n "> b" st)
    (modify-syntax-entry ?\" "\"" st)
    (modify-syntax-entry ?_ "_" st)
    st)
  "Syntax table of `dnn-mode'.")

(defconst dnn-font-lock-keywords
  `((,(regexp-opt '("use" "layer" "model" "fn" "param" "buffer" "let" "on" "from" "at"
                    "frozen" "dataset" "train" "if" "else" "scan" "in" "step" "update"
                    "with")
                  'symbols)
     . font-lock-keyword-face)
    (,(regexp-opt '("true" "false" "training") 'symbols) . font-lock-constant-face)
    (,(regexp-opt '("f16" "bf16" "f32" "f64" "i8" "i16" "i32" "i64" "u8" "bool"
                    "Int" "Float" "Bool" "Str")
                  'symbols)
     . font-lock-type-face)
    ("\\_<\\(?:layer\\|model\\|dataset\\|train\\)\\s-+\\([A-Za-z_][A-Za-z0-9_]*\\)"
     1 font-lock-type-face)
    ("\\_<fn\\s-+\\([A-Za-z_][A-Za-z0-9_]*\\)" 1 font-lock-function-name-face)
    ("\\_<\\(?:let\\|param\\|buffer\\)\\s-+\\([A-Za-z_][A-Za-z0-9_]*\\)"
     1 font-lock-variable-name-face)
    ("\\_<[A-Z][A-Za-z0-9_]*\\_>" . font-lock-type-face))
  "Highlighting of `dnn-mode'.")

(defun dnn-indent-line ()
  "Indent the current line by its depth in brackets."
  (interactive)
  (let* ((depth (save-excursion
                  (back-to-indentation)
                  (let ((d (car (syntax-ppss))))
                    (if (looking-at "[]})]") (max 0 (1- d)) d))))
         (col (* depth dnn-indent-offset)))
    (if (<= (current-column) (current-indentation))
        (indent-line-to col)
      (save-excursion (indent-line-to col)))))

;;;###autoload
(define-derived-mode dnn-mode prog-mode "dnn"
  "Major mode for dnnc's .dnn files."
  :syntax-table dnn-mode-syntax-table
  (setq-local comment-start "// ")
  (setq-local comment-start-skip "//+\\s-*")
  (setq-local comment-end "")
  (setq-local indent-line-function #'dnn-indent-line)
  (setq-local font-lock-defaults '(dnn-font-lock-keywords)))

;;;###autoload
(add-to-list 'auto-mode-alist '("\\.dnn\\'" . dnn-mode))

(defvar eglot-server-programs)
(with-eval-after-load 'eglot
  (add-to-list 'eglot-server-programs
               `(dnn-mode . ,(lambda (&rest _) (list dnn-dnnc-program "lsp")))))

(provide 'dnn-mode)
;;; dnn-mode.el ends here
