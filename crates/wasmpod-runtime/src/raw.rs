//! A raw program (WasmBox's interface): a preview1 command that reads its input on stdin and
//! prints its result, with no CGI on either side. Exit code 0 (or a return from `_start`) is
//! success; what it printed is the response body.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::command::{Command, CommandInput};
use crate::{RequestLimits, RunError};

/// A plain WASI command served as a function: stdin in, stdout out. Serve a request with
/// [`RawProgram::run`].
pub struct RawProgram {
    pub(crate) command: Arc<Command>,
    /// argv: the function's name as `argv[0]`, nothing else (WasmBox passed no arguments).
    argv: [String; 1],
}

/// What a raw program printed, and what it cost.
#[derive(Debug)]
pub struct RawOutcome {
    /// Everything it wrote to stdout.
    pub stdout: Bytes,
    /// Time to instantiate the module.
    pub instantiate: Duration,
    /// The most memory (all memories and tables) the instance had at once.
    pub peak_memory_bytes: u64,
}

impl RawProgram {
    pub(crate) fn new(command: Command) -> RawProgram {
        let argv = [command.sandbox.name.to_string()];
        RawProgram { command: Arc::new(command), argv }
    }

    /// Runs one request in a fresh instance: `stdin` in, what it printed out. A non-zero exit, a
    /// trap, a blown memory grant or the time limit end this request only.
    pub async fn run(
        &self,
        stdin: Bytes,
        env: &[(String, String)],
        limits: &RequestLimits,
    ) -> Result<RawOutcome, RunError> {
        let finished = self.command.run(CommandInput { stdin, argv: &self.argv, env }, limits).await?;
        Ok(RawOutcome {
            stdout: finished.stdout,
            instantiate: finished.instantiate,
            peak_memory_bytes: finished.peak_memory_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::tests::runtime;
    use crate::{FunctionSpec, Guest, Interface};

    async fn run(
        module: &str,
        stdin: &'static [u8],
        env: &[(String, String)],
    ) -> Result<RawOutcome, RunError> {
        let runtime = runtime();
        let spec = FunctionSpec { interface: Some(Interface::Raw), ..FunctionSpec::new("/p", module) };
        let registry = runtime.load(&[spec], None).await.expect("load");
        let Some(Guest::Raw(program)) = registry.lookup("/p").map(|f| f.guest()) else {
            panic!("{module} was not loaded as a raw program")
        };
        program.run(Bytes::from_static(stdin), env, &RequestLimits::default()).await
    }

    #[tokio::test]
    async fn stdin_in_stdout_out_byte_for_byte() {
        let outcome = run(wasmpod_guests::RAW, b"plain text, no headers\0", &[]).await.unwrap();
        assert_eq!(outcome.stdout, &b"plain text, no headers\0"[..]);
    }

    #[tokio::test]
    async fn the_guest_gets_its_name_as_argv0_and_only_the_env_it_is_given() {
        let env = [("MODE".to_owned(), "fast".to_owned())];
        let outcome = run(wasmpod_guests::ENV, b"", &env).await.unwrap();
        let text = String::from_utf8_lossy(&outcome.stdout);
        assert!(text.ends_with("\n\nARG0=/p\nMODE=fast\n"), "{text}");
    }

    #[tokio::test]
    async fn a_non_zero_exit_is_a_failure_with_its_code() {
        let env = [("QUERY_STRING".to_owned(), "code=7".to_owned())];
        let error = run(wasmpod_guests::EXIT, b"", &env).await.unwrap_err();
        assert!(matches!(error, RunError::Exit(7)), "{error}");
        let env = [("QUERY_STRING".to_owned(), "code=0".to_owned())];
        assert_eq!(
            run(wasmpod_guests::EXIT, b"", &env).await.unwrap().stdout,
            "content-type: text/plain\n\nexiting\n"
        );
    }

    #[tokio::test]
    async fn an_interface_that_does_not_fit_the_file_is_a_load_error() {
        let spec = FunctionSpec {
            interface: Some(Interface::Raw),
            ..FunctionSpec::new("/c", wasmpod_guests::HTTP_COMPONENT)
        };
        let error = runtime().load(&[spec], None).await.err().expect("a load error");
        assert!(
            error.to_string().ends_with(
                "interface \"raw\" needs a core module (a WASI command), and this file is a component"
            ),
            "{error}"
        );
        let spec = FunctionSpec {
            interface: Some(Interface::WasiHttp),
            ..FunctionSpec::new("/m", wasmpod_guests::HELLO)
        };
        let error = runtime().load(&[spec], None).await.err().expect("a load error");
        assert!(
            error
                .to_string()
                .ends_with("interface \"wasi-http\" needs a component, and this file is a core module"),
            "{error}"
        );
    }
}
