//! A WAGI module: a preview1 command spoken to in CGI (environment and body in, a header block
//! and body out), and its `_routes` export read at load.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use wasmpod_wagi::{parse_output, parse_routes_text, CgiEnv, CgiResponse, RoutePattern};

use crate::command::{Command, CommandInput};
use crate::{RequestLimits, RunError};

/// How long a module's `_routes` export may run at load. One that runs longer (a loop that never
/// returns) fails that function's load with the reason logged beside its name: in a served folder
/// the others load and serve; with a `modules.toml`, WAGI's start-up rule stops the start.
pub const ROUTES_TIMEOUT: Duration = Duration::from_secs(10);

/// A WAGI module prepared for one route and entrypoint. Serve a request with [`WagiModule::run`].
pub struct WagiModule {
    pub(crate) command: Arc<Command>,
    argv: Option<String>,
}

/// What a WAGI request hands its guest: built by the server from the request with
/// `wasmpod_wagi::build_env` and `build_argv`.
#[derive(Debug, Clone, Default)]
pub struct WagiInput {
    /// The CGI environment (with the server's `--env` values under it).
    pub env: CgiEnv,
    /// argv: the raw path and query items, or the route's `argv` template.
    pub argv: Vec<String>,
    /// The whole request body, on stdin.
    pub body: Bytes,
}

/// A WAGI response and what it cost, for the metrics.
#[derive(Debug)]
pub struct Outcome {
    /// The parsed CGI response.
    pub response: CgiResponse,
    /// Time to instantiate the module.
    pub instantiate: Duration,
    /// The most memory (all memories and tables) the instance had at once.
    pub peak_memory_bytes: u64,
}

impl WagiModule {
    pub(crate) fn new(command: Command, argv: Option<String>) -> WagiModule {
        WagiModule { command: Arc::new(command), argv }
    }

    /// The route's `argv` template (`${SCRIPT_NAME} ${ARGS}`), if it has one.
    pub fn argv_template(&self) -> Option<&str> {
        self.argv.as_deref()
    }

    /// Runs one request in a fresh instance and parses what it printed.
    ///
    /// A trap, a non-zero exit, a blown memory grant, the time limit or unparsable output end
    /// this request only; the caller turns the error into a 5xx.
    pub async fn run(&self, input: WagiInput, limits: &RequestLimits) -> Result<Outcome, RunError> {
        let input = CommandInput { stdin: input.body, argv: &input.argv, env: &input.env };
        let finished = self.command.run(input, limits).await?;
        let response = parse_output(finished.stdout)?;
        Ok(Outcome {
            response,
            instantiate: finished.instantiate,
            peak_memory_bytes: finished.peak_memory_bytes,
        })
    }

    /// Runs the module's `_routes` export once and joins what it printed under `route`: each
    /// `(route, entrypoint)` in the order printed. The error is the reason, for a person.
    pub(crate) async fn dynamic_routes(
        &self,
        route: &RoutePattern,
    ) -> Result<Vec<(RoutePattern, String)>, String> {
        let text = self.command.print_of("_routes", ROUTES_TIMEOUT).await?;
        let routes = parse_routes_text(&text).map_err(|e| e.to_string())?;
        Ok(routes.into_iter().map(|r| (route.join(&r.path), r.entrypoint)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::tests::load_one;
    use crate::Guest;

    fn input(query: &str, body: &'static [u8]) -> WagiInput {
        WagiInput {
            env: vec![("QUERY_STRING".into(), query.to_owned())],
            argv: vec!["/".to_owned()],
            body: Bytes::from_static(body),
        }
    }

    async fn run(
        module: &str,
        query: &str,
        body: &'static [u8],
        limits: RequestLimits,
    ) -> Result<Outcome, RunError> {
        let (_runtime, function) = load_one("/f", module).await;
        let Guest::Wagi(wagi) = function.guest() else { panic!("{module} is not a WAGI module") };
        wagi.run(input(query, body), &limits).await
    }

    #[tokio::test]
    async fn a_request_runs_in_a_fresh_instance_and_its_output_is_parsed() {
        let outcome = run(wasmpod_guests::HELLO, "", b"", RequestLimits::default()).await.unwrap();
        assert_eq!(outcome.response.status, 200);
        assert_eq!(outcome.response.body, "hello world\n");
        assert!(outcome.peak_memory_bytes > 0);
    }

    #[tokio::test]
    async fn the_body_arrives_on_stdin_byte_for_byte() {
        let outcome = run(wasmpod_guests::ECHO, "", b"\0binary\r\n", RequestLimits::default()).await.unwrap();
        assert_eq!(outcome.response.body, &b"\0binary\r\n"[..]);
    }

    #[tokio::test]
    async fn failures_answer_that_request_with_their_reason() {
        let limited = RequestLimits { memory_bytes: Some(32 << 20), ..RequestLimits::default() };
        let short =
            RequestLimits { timeout: std::time::Duration::from_millis(200), ..RequestLimits::default() };
        let cases: [(&str, &str, RequestLimits, &str); 5] = [
            (wasmpod_guests::TRAP, "", RequestLimits::default(), "trap"),
            (wasmpod_guests::EXIT, "code=3", RequestLimits::default(), "exit"),
            (wasmpod_guests::HOG, "mb=64", limited, "memory_limit"),
            (wasmpod_guests::SPIN, "", short, "timeout"),
            (wasmpod_guests::RAW, "", RequestLimits::default(), "bad_output"),
        ];
        for (module, query, limits, kind) in cases {
            let error = run(module, query, b"no header block", limits).await.expect_err(module);
            assert_eq!(error.kind(), kind, "{module}: {error}");
        }
    }

    #[tokio::test]
    async fn exit_zero_after_output_is_success() {
        let outcome = run(wasmpod_guests::EXIT, "code=0", b"", RequestLimits::default()).await.unwrap();
        assert_eq!(outcome.response.status, 200);
    }
}
