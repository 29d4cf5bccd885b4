// Deploy side of the python runtime: checks that a handler source is UTF-8, compiles under
// Pyodide's own Python (so the grammar is exactly the one the guest runs) and defines the handler.

import type { FunctionParams } from '../../core/function-spec.js';
import { ThawError, toThawError } from '../../core/errors.js';
import type { DeployedArtefact, RuntimeDeployer } from '../runtime.js';
import { stagePythonBundle } from './bundle.js';
import { pyodidePackageProviding } from './pyodide-packages.js';
import { PYODIDE_VERSION, detachedBinding, loadFresh, type PyodideLike, type PyProxyLike } from './_pyodide-host.js';

/** File name of a deployed python function's artefact. */
export const PYTHON_ARTEFACT = 'handler.py';

/** Options of createPythonDeployer(). */
export interface PythonDeployerOptions {
  /**
   * Compile the source with Pyodide at deploy (exact syntax errors, line numbers). Costs one
   * Pyodide load (~2 s) per daemon process, then about a millisecond per deploy. When false,
   * a syntax error surfaces at the guest's init as THAW_SOURCE_INVALID.
   */
  readonly checkSyntax: boolean;
}

const CHECK_PY = String.raw`
def _thaw_check(source):
    try:
        compile(source, "handler.py", "exec")
    except SyntaxError as exc:
        return "line %s: %s" % (exc.lineno, exc.msg)
    return ""

def _thaw_missing(source, provided):
    # Modules imported unconditionally at the handler's top level (not inside try, if or def)
    # that are neither provided by the bundle nor importable from Pyodide's standard library.
    import ast, importlib.util
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            names += [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module.split(".")[0])
    have = set(provided)
    return ",".join(n for n in dict.fromkeys(names) if n not in have and importlib.util.find_spec(n) is None)

(_thaw_check, _thaw_missing)
`;

let checker: Promise<[PyProxyLike, PyProxyLike]> | undefined;

/** One Pyodide per process, used only to compile sources and look up imports (never runs them): [check, missing]. */
function syntaxChecker(): Promise<[PyProxyLike, PyProxyLike]> {
  checker ??= loadFresh(detachedBinding()).then((py: PyodideLike) => (py.runPython(CHECK_PY) as { toJs(): [PyProxyLike, PyProxyLike] }).toJs());
  checker.catch(() => {
    checker = undefined;
  });
  return checker;
}

/** Finds `def <handler>(` at column 0 (top level); other definitions need a running interpreter. */
export function definesHandler(source: string, handler: string): boolean {
  return new RegExp(`^def[ \\t]+${handler}[ \\t]*\\(`, 'm').test(source);
}

/**
 * Builds a python deployer.
 * deploy() throws THAW_SOURCE_INVALID (not UTF-8, or a syntax error) and THAW_HANDLER_MISSING.
 */
export function createPythonDeployer(options: PythonDeployerOptions): RuntimeDeployer {
  return {
    id: 'python',
    async deploy(fn: FunctionParams, source: Uint8Array): Promise<DeployedArtefact> {
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(source);
      } catch (err: unknown) {
        throw new ThawError('THAW_SOURCE_INVALID', { detail: 'not UTF-8 text' }, { cause: err });
      }
      if (text.includes('\0')) throw new ThawError('THAW_SOURCE_INVALID', { detail: 'contains NUL bytes' });
      if (options.checkSyntax) {
        let message: string;
        try {
          message = String((await syntaxChecker())[0](text));
        } catch (err: unknown) {
          throw toThawError(err);
        }
        if (message) throw new ThawError('THAW_SOURCE_INVALID', { detail: `handler.py ${message}` });
      }
      if (!definesHandler(text, fn.handler)) {
        throw new ThawError('THAW_HANDLER_MISSING', { handler: fn.handler, what: 'Python source (no top-level def)' });
      }
      const bundle = fn.python === undefined ? undefined : stagePythonBundle(fn.python);
      if (bundle !== undefined && options.checkSyntax) {
        let missing: string;
        try {
          missing = String((await syntaxChecker())[1](text, [...bundle.provides, 'thaw']));
        } catch (err: unknown) {
          bundle.discard();
          throw toThawError(err);
        }
        if (missing !== '') {
          bundle.discard();
          const names = missing.split(',');
          const fromPyodide = names.flatMap((m) => {
            const pkg = pyodidePackageProviding(m);
            return pkg === undefined ? [] : [`'${m}' is Pyodide's package '${pkg}'`];
          });
          const hint = fromPyodide.length === 0 ? '' : ` (${fromPyodide.join(', ')}: name it in 'packages', with 'pyodidePackages' a local Pyodide package directory; docs/python-runtime.md)`;
          throw new ThawError('THAW_BUNDLE_INVALID', {
            detail: `handler.py imports ${names.map((m) => `'${m}'`).join(', ')} at top level, found neither in the bundle, its requirements, its packages nor Python's standard library: add ${names.length > 1 ? 'them' : 'it'} to 'requirements' (a wheel or package directory)${hint}`,
          });
        }
      }
      return {
        ...(bundle === undefined ? {} : { bundle }),
        fileName: PYTHON_ARTEFACT,
        bytes: new TextEncoder().encode(text),
        facts: {
          sourceBytes: source.byteLength,
          lines: text.split('\n').length,
          handler: fn.handler,
          pyodideVersion: PYODIDE_VERSION,
          syntaxChecked: options.checkSyntax,
          ...bundle?.facts,
        },
      };
    },
  };
}

/** The python deployer used by the daemon: syntax is checked with Pyodide at deploy. */
export const pythonDeployer: RuntimeDeployer = createPythonDeployer({ checkSyntax: true });
