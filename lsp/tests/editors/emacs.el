;;; emacs.el --- Emacs (28, batch) + eglot driving `dnnc lsp' -*- lexical-binding: t; -*-
;;
;; With the shipped `dnn-mode' (lsp/editors/emacs/dnn-mode.el), as a user would: opens a
;; copy of the MNIST example, types `fc1.' as `forward''s body and asks for completion,
;; hovers on `hidden', asks for the definition of `Dense', breaks a line and waits for
;; the diagnostic.
;;
;;   emacs --batch -Q -l lsp/tests/editors/emacs.el DNNC REPO OUT.json
;;
;; Writes the answers to OUT.json (lsp/tests/editors/run.py checks them); exits 1 with
;; the reason if a step got no answer at all.

(require 'cl-lib)
(require 'json)
;; Emacs 28 has eglot from a package (Debian's `elpa-eglot'); `-Q' skips packages.
(unless (locate-library "eglot")
  (require 'package)
  (add-to-list 'package-directory-list "/usr/share/emacs/site-lisp/elpa")
  (package-initialize))

(let* ((dnnc (nth 0 command-line-args-left))
       (repo (file-name-as-directory (nth 1 command-line-args-left)))
       (out (nth 2 command-line-args-left))
       (src (concat repo "examples/mnist_mlp.dnn"))
       (file (concat repo "examples/.editor-test-emacs.dnn"))
       (results nil))
  (setq command-line-args-left nil)
  (add-to-list 'load-path (concat repo "lsp/editors/emacs"))
  (require 'dnn-mode)
  (require 'eglot)
  (setq dnn-dnnc-program dnnc)
  (cl-flet* ((fail (why)
               (message "emacs.el: %s" why)
               (ignore-errors (delete-file file))
               (kill-emacs 1))
             (put-result (k v) (push (cons k v) results))
             (wait-until (pred secs)
               (let ((deadline (+ (float-time) secs)))
                 (while (and (not (funcall pred)) (< (float-time) deadline))
                   (accept-process-output nil 0.05))
                 (funcall pred)))
             (goto (text)
               (goto-char (point-min))
               (unless (search-forward text nil t) (fail (format "no `%s'" text)))
               (goto-char (match-beginning 0)))
             (request (method)
               (eglot--signal-textDocument/didChange)
               (jsonrpc-request (eglot-current-server) method
                                (list :textDocument (eglot--TextDocumentIdentifier)
                                      :position (eglot--pos-to-lsp-position)))))
    (copy-file src file t)
    (find-file file)
    (put-result 'mode (symbol-name major-mode))
    (apply #'eglot (eglot--guess-contact))
    (unless (wait-until (lambda () (let ((s (eglot-current-server)))
                                     (and s (eglot--capabilities s))))
                        20)
      (fail "eglot did not connect to dnnc"))
    ;; Completion right after `fc1.' as `forward''s body.
    (goto "x |> fc1")
    (let* ((start (point))
           (body (buffer-substring start (line-end-position))))
      (delete-region start (line-end-position))
      (insert "fc1.")
      (let* ((r (request :textDocument/completion))
             (items (if (vectorp r) r (plist-get r :items))))
        (put-result 'completion (mapcar (lambda (i) (plist-get i :label)) items)))
      ;; The body back, so the rest runs on a file that parses.
      (delete-region start (line-end-position))
      (insert body))
    ;; Hover on `hidden' in `fc2  = Dense(hidden, hidden)'.
    (goto "fc2  = Dense(hidden")
    (forward-char (length "fc2  = Dense("))
    (let ((h (request :textDocument/hover)))
      (put-result 'hover (let ((c (plist-get h :contents)))
                           (if (stringp c) c (plist-get c :value)))))
    ;; Definition of `Dense'.
    (goto "fc1  = Dense")
    (forward-char (length "fc1  = "))
    (let* ((d (request :textDocument/definition))
           (d (if (vectorp d) (aref d 0) d)))
      (put-result 'definition (or (plist-get d :uri) (plist-get d :targetUri))))
    ;; A type error, diagnosed after the edit (eglot shows it through flymake).
    (goto "head = Dense(hidden, 10)")
    (search-forward "10")
    (insert ", 3")
    (eglot--signal-textDocument/didChange)
    (wait-until (lambda () (cl-some (lambda (d) (string-match-p "hyperparameter" (flymake-diagnostic-text d)))
                                    (flymake-diagnostics)))
                15)
    (put-result 'diagnostics (mapcar #'flymake-diagnostic-text (flymake-diagnostics)))
    (with-temp-file out (insert (json-encode results)))
    (set-buffer-modified-p nil)
    (ignore-errors (eglot-shutdown (eglot-current-server)))
    (delete-file file)
    (kill-emacs 0)))
