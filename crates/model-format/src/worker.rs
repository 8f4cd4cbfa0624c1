//! Rendering chat templates in a confined worker process: the worker's side, and the frames both
//! sides speak.
//!
//! A template is code from whoever published the model, run on every request. Its fuel bounds
//! how many instructions it runs, not what they cost: `{% set s = 'x' * 100000000 %}` is one
//! instruction and 100 MB, and each `{% set s = s ~ s %}` doubles it. No limit on minijinja's
//! values can be set from outside it, so the engine renders in a worker — the server's own
//! binary again (`<program> render-templates --memory N`, a hidden subcommand that calls
//! [`run_child`]) — that confines itself (`ollamanet_sandbox`: its address space capped, no core
//! files, killed with its parent) and then renders one [`Prompt`] after another, read from its
//! standard input, answering each on its standard output. A template that needs more memory
//! ends the worker; the engine's wall clock ends one that runs too long; either way that request
//! fails with [`TemplateError::Limit`] and the next one gets a fresh worker.
//!
//! Frames, both ways: a little-endian `u32` length, then that many bytes. A request is a
//! [`Prompt`] in JSON; an answer is one tag byte (0 rendered, 1 over a limit, 2 not renderable)
//! and the text in UTF-8, which needs no escaping however many control characters a template
//! writes.

use std::io::{self, Read, Write};
use std::process::ExitCode;

use crate::template::{self, Prompt, TemplateError};

/// The hidden subcommand of the server's binary that runs [`run_child`].
pub const SUBCOMMAND: &str = "render-templates";

/// Most bytes of a request: a conversation the engine accepted (its body limit is 64 MiB),
/// encoded again.
pub const MAX_REQUEST: usize = 256 << 20;

/// Most bytes of an answer: the tag, and a rendered text of [`template::MAX_OUTPUT`] bytes
/// whose invalid UTF-8 became three bytes each.
pub const MAX_ANSWER: usize = 1 + 3 * template::MAX_OUTPUT;

const RENDERED: u8 = 0;
const LIMIT: u8 = 1;
const NOT_RENDERABLE: u8 = 2;

/// An answer as its frame's bytes.
pub fn encode_answer(answer: &Result<String, TemplateError>) -> Vec<u8> {
    let (tag, text) = match answer {
        Ok(text) => (RENDERED, text.as_str()),
        Err(TemplateError::Limit(why)) => (LIMIT, why.as_str()),
        Err(TemplateError::Render(why)) => (NOT_RENDERABLE, why.as_str()),
    };
    let mut frame = Vec::with_capacity(1 + text.len());
    frame.push(tag);
    frame.extend_from_slice(text.as_bytes());
    frame
}

/// An answer from its frame's bytes; `None` when they are not one.
pub fn decode_answer(frame: &[u8]) -> Option<Result<String, TemplateError>> {
    let (&tag, text) = frame.split_first()?;
    let text = String::from_utf8(text.to_vec()).ok()?;
    match tag {
        RENDERED => Some(Ok(text)),
        LIMIT => Some(Err(TemplateError::Limit(text))),
        NOT_RENDERABLE => Some(Err(TemplateError::Render(text))),
        _ => None,
    }
}

/// Reads one frame of at most `most` bytes; `None` at the end of the input.
pub fn read_frame(from: &mut impl Read, most: usize) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match from.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > most {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a frame of {len} bytes; at most {most}")));
    }
    let mut frame = vec![0; len];
    from.read_exact(&mut frame)?;
    Ok(Some(frame))
}

/// Writes one frame.
pub fn write_frame(to: &mut impl Write, frame: &[u8]) -> io::Result<()> {
    let len = u32::try_from(frame.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
    to.write_all(&len.to_le_bytes())?;
    to.write_all(frame)?;
    to.flush()
}

/// The worker's side: `<program> render-templates --memory BYTES`. Call it from `main` before
/// anything else starts (no runtime, no threads): the bound counts every byte the process maps.
pub fn run_child(args: &[String]) -> ExitCode {
    let memory_bytes = match args {
        [flag, value] if flag == "--memory" => value.parse::<u64>().ok(),
        _ => None,
    };
    let Some(memory_bytes) = memory_bytes else {
        eprintln!("{SUBCOMMAND}: usage: {SUBCOMMAND} --memory BYTES");
        return ExitCode::from(2);
    };
    if let Err(e) = ollamanet_sandbox::confine(ollamanet_sandbox::Confinement { memory_bytes, cpu_seconds: None }) {
        eprintln!("{SUBCOMMAND}: cannot limit itself: {e}");
        return ExitCode::from(3);
    }
    match serve(&mut io::stdin().lock(), &mut io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{SUBCOMMAND}: {e}");
            ExitCode::from(4)
        }
    }
}

/// Renders each request read from `input` and answers it on `output`, until `input` ends.
pub fn serve(input: &mut impl Read, output: &mut impl Write) -> io::Result<()> {
    while let Some(frame) = read_frame(input, MAX_REQUEST)? {
        let prompt: Prompt =
            serde_json::from_slice(&frame).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        drop(frame);
        write_frame(output, &encode_answer(&template::render(&prompt)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{CHATML, DEFAULT_FUEL, TemplateMessage};

    fn prompt(template: &str) -> Prompt {
        Prompt {
            template: template.to_owned(),
            messages: vec![TemplateMessage::new("user", "Hi")],
            tools: None,
            bos_token: String::new(),
            eos_token: String::new(),
            fuel: DEFAULT_FUEL,
        }
    }

    #[test]
    fn a_worker_answers_each_request_in_turn() {
        let mut input = Vec::new();
        for template in
            [CHATML, "{% for %}", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"]
        {
            write_frame(&mut input, &serde_json::to_vec(&prompt(template)).unwrap()).unwrap();
        }
        let mut output = Vec::new();
        serve(&mut input.as_slice(), &mut output).unwrap();
        let mut answers = output.as_slice();
        let mut next = || decode_answer(&read_frame(&mut answers, MAX_ANSWER).unwrap().unwrap()).unwrap();
        assert_eq!(next().unwrap(), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
        assert!(matches!(next(), Err(TemplateError::Render(_))));
        assert!(matches!(next(), Err(TemplateError::Limit(why)) if why.contains("fuel")));
        assert!(read_frame(&mut answers, MAX_ANSWER).unwrap().is_none());
    }

    #[test]
    fn frames_past_their_bound_are_refused_before_they_are_read() {
        let mut input = ((MAX_REQUEST + 1) as u32).to_le_bytes().to_vec();
        input.extend_from_slice(b"{}");
        let err = serve(&mut input.as_slice(), &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(decode_answer(&[9, b'x']).is_none() && decode_answer(&[]).is_none());
    }
}
