//! The `windowsEventLog` output: each event reported to the Windows event log of the machine the
//! collector runs on, as azlog.exe did, so that Windows Event Forwarding, WinCollect or a SIEM agent
//! already on the host picks it up.
//!
//! An event is one `ReportEventW` call: its type from the severity, its event id from the Windows
//! EventID where the event has one (WAD rows), and one insertion string holding the body. The call
//! returns once the event log service has the event, which is what "delivered" means here.
//!
//! Only Windows has an event log. Elsewhere the output fails to set up, saying so; the record it
//! would write is built the same way on every platform, which is what the tests check off Windows.

use super::{Delivered, DeliveryError, Dispatch, Output, SetupError, event_xml, line};
use crate::config::{JsonFormat, WindowsEventBody, WindowsEventLogOutputConfig};
use crate::event::{Event, Severity};

/// `EVENTLOG_ERROR_TYPE`, `EVENTLOG_WARNING_TYPE` and `EVENTLOG_INFORMATION_TYPE`.
const ERROR_TYPE: u16 = 0x0001;
const WARNING_TYPE: u16 = 0x0002;
const INFORMATION_TYPE: u16 = 0x0004;

/// ReportEventW refuses an insertion string longer than 31,839 characters.
const MAX_STRING_UNITS: usize = 31_839;

/// One event as `ReportEventW` takes it.
#[derive(Debug, PartialEq, Eq)]
pub struct Record {
    pub event_type: u16,
    /// The kind of record, so an agent can filter on it: 1 VM diagnostics (WAD), 2 Activity Log,
    /// 3 Defender alert, 4 directory audit, 5 resource log, 6 sign-in ([`crate::event::EventKind::ALL`]'s order).
    pub category: u16,
    pub event_id: u32,
    /// The body as UTF-16, NUL-terminated.
    pub text: Vec<u16>,
    /// Whether the body was cut to fit.
    pub truncated: bool,
}

impl Record {
    pub fn of(event: &Event, body: WindowsEventBody, scratch: &mut Vec<u8>) -> Record {
        scratch.clear();
        match body {
            WindowsEventBody::EventXml => event_xml::push(scratch, event),
            WindowsEventBody::Json => line::push_json(scratch, event, JsonFormat::Ndjson),
            WindowsEventBody::Message => scratch.extend_from_slice(event.text().as_bytes()),
        }
        // Every body writer pushes whole UTF-8 strings.
        let text = String::from_utf8_lossy(scratch);
        let mut units: Vec<u16> = text.encode_utf16().collect();
        let truncated = units.len() > MAX_STRING_UNITS;
        if truncated {
            units.truncate(MAX_STRING_UNITS);
            // A surrogate pair cut in half would be an invalid string.
            if units.last().is_some_and(|u| (0xD800..0xDC00).contains(u)) {
                units.pop();
            }
        }
        // NUL inside the text would end it early: the event log takes C strings.
        for unit in &mut units {
            if *unit == 0 {
                *unit = u16::from(b' ');
            }
        }
        units.push(0);
        Record {
            event_type: match event.severity {
                Severity::Critical | Severity::Error => ERROR_TYPE,
                Severity::Warning => WARNING_TYPE,
                _ => INFORMATION_TYPE,
            },
            category: event.kind.index() as u16 + 1,
            // The Windows EventID of a WAD row; other events have names, not numbers.
            event_id: event.name.parse::<u16>().map_or(0, u32::from),
            text: units,
            truncated,
        }
    }
}

#[derive(Debug)]
pub struct WindowsEventLogOutput {
    name: String,
    body: WindowsEventBody,
    log: sys::EventSource,
    scratch: Vec<u8>,
}

impl WindowsEventLogOutput {
    pub fn open(name: String, config: &WindowsEventLogOutputConfig) -> Result<Self, SetupError> {
        let log = sys::EventSource::register(&config.source).map_err(|message| SetupError {
            output: name.clone(),
            message,
        })?;
        Ok(WindowsEventLogOutput {
            name,
            body: config.body,
            log,
            scratch: Vec::new(),
        })
    }
}

impl Output for WindowsEventLogOutput {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&mut self, batch: &Dispatch) -> Result<Delivered, DeliveryError> {
        let mut delivered = Delivered::default();
        // A failed batch is reported again whole: the event log has no way to ask what it holds.
        for event in &batch.events {
            let record = Record::of(event, self.body, &mut self.scratch);
            self.log.report(&record).map_err(|message| DeliveryError {
                output: self.name.clone(),
                category: "write",
                message,
            })?;
            delivered.sent += 1;
            delivered.truncated += usize::from(record.truncated);
        }
        Ok(delivered)
    }
}

#[cfg(windows)]
mod sys {
    //! The three advapi32 calls the output makes.

    use windows_sys::Win32::Foundation::HANDLE;
    use windows_sys::Win32::System::EventLog::{
        DeregisterEventSource, REPORT_EVENT_TYPE, RegisterEventSourceW, ReportEventW,
    };

    use super::Record;

    #[derive(Debug)]
    pub struct EventSource(HANDLE);

    // SAFETY: an event log handle may be used from any thread; the output owns it alone.
    unsafe impl Send for EventSource {}

    impl EventSource {
        pub fn register(source: &str) -> Result<Self, String> {
            let name: Vec<u16> = source.encode_utf16().chain([0]).collect();
            // SAFETY: `name` is NUL-terminated and outlives the call; a null server is this host.
            let handle = unsafe { RegisterEventSourceW(std::ptr::null(), name.as_ptr()) };
            if handle.is_null() {
                return Err(format!(
                    "cannot open the event log for source {source}: {}",
                    std::io::Error::last_os_error()
                ));
            }
            Ok(EventSource(handle))
        }

        pub fn report(&self, record: &Record) -> Result<(), String> {
            let strings = [record.text.as_ptr()];
            // SAFETY: the handle is open; the one string is NUL-terminated and outlives the call;
            // no SID and no binary data are passed.
            let ok = unsafe {
                ReportEventW(
                    self.0,
                    record.event_type as REPORT_EVENT_TYPE,
                    record.category,
                    record.event_id,
                    std::ptr::null_mut(),
                    1,
                    0,
                    strings.as_ptr(),
                    std::ptr::null_mut(),
                )
            };
            if ok == 0 {
                return Err(format!(
                    "the event log refused the event: {}",
                    std::io::Error::last_os_error()
                ));
            }
            Ok(())
        }
    }

    impl Drop for EventSource {
        fn drop(&mut self) {
            // SAFETY: the handle came from RegisterEventSourceW and is closed once.
            unsafe {
                DeregisterEventSource(self.0);
            }
        }
    }
}

#[cfg(not(windows))]
mod sys {
    use super::Record;

    /// No event log exists here, so no source can be opened and nothing is ever reported.
    #[derive(Debug)]
    pub enum EventSource {}

    impl EventSource {
        pub fn register(_source: &str) -> Result<Self, String> {
            Err(
                "the Windows event log exists only on Windows; run this collector on Windows \
                 (on Kubernetes the operator schedules a LogSource with a windowsEventLog output \
                 on a Windows node), or choose a file, syslog or stdout output"
                    .into(),
            )
        }

        pub fn report(&self, _record: &Record) -> Result<(), String> {
            match *self {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::line::tests::event;

    fn text(record: &Record) -> String {
        String::from_utf16(&record.text[..record.text.len() - 1]).expect("utf-16")
    }

    #[test]
    fn a_wad_event_keeps_its_event_id_and_level_and_its_xml() {
        let mut e = event(
            "p|r",
            r#"{"RawXml":"<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><EventID>4625</EventID></System></Event>"}"#,
        );
        e.kind = crate::event::EventKind::Wad;
        e.name = "4625".into();
        e.severity = Severity::Warning;
        let record = Record::of(&e, WindowsEventBody::EventXml, &mut Vec::new());
        assert_eq!((record.event_type, record.event_id), (WARNING_TYPE, 4625));
        assert_eq!(record.category, 1);
        assert!(text(&record).contains("<EventID>4625</EventID>"));
        assert_eq!(record.text.last(), Some(&0));
        assert!(!record.truncated);
    }

    #[test]
    fn other_events_are_information_or_error_with_id_zero_and_the_chosen_body() {
        let mut e = event("id-1", r#"{"operationName":"x"}"#);
        e.name = "Microsoft.Compute/virtualMachines/delete".into();
        e.message = "a VM was deleted".into();
        e.severity = Severity::Informational;
        let record = Record::of(&e, WindowsEventBody::Message, &mut Vec::new());
        assert_eq!((record.event_type, record.event_id), (INFORMATION_TYPE, 0));
        assert_eq!(
            record.category,
            crate::event::EventKind::ALL
                .iter()
                .position(|k| *k == e.kind)
                .map_or(0, |i| i as u16 + 1)
        );
        assert_eq!(text(&record), "a VM was deleted");
        e.severity = Severity::Critical;
        let record = Record::of(&e, WindowsEventBody::Json, &mut Vec::new());
        assert_eq!(record.event_type, ERROR_TYPE);
        let json: serde_json::Value = serde_json::from_str(&text(&record)).expect("json");
        assert_eq!(json["operationName"], "x");
    }

    #[test]
    fn a_long_body_is_cut_to_what_the_event_log_takes_without_splitting_a_character() {
        let mut e = event("id", "{}");
        // 31,838 ASCII units and then a character that needs a surrogate pair.
        e.message = format!("{}{}\0tail", "a".repeat(MAX_STRING_UNITS - 1), '😀').into();
        let record = Record::of(&e, WindowsEventBody::Message, &mut Vec::new());
        assert!(record.truncated);
        assert_eq!(record.text.len(), MAX_STRING_UNITS);
        assert!(String::from_utf16(&record.text[..record.text.len() - 1]).is_ok());
        let mut short = event("id", "{}");
        short.message = "a\0b".into();
        assert_eq!(
            text(&Record::of(
                &short,
                WindowsEventBody::Message,
                &mut Vec::new()
            )),
            "a b"
        );
    }

    #[cfg(not(windows))]
    #[test]
    fn off_windows_the_output_refuses_to_start_and_says_where_it_runs() {
        let config = WindowsEventLogOutputConfig {
            name: None,
            source: "azlog".into(),
            body: WindowsEventBody::EventXml,
        };
        let err = WindowsEventLogOutput::open("windowsEventLog-0".into(), &config)
            .expect_err("no event log here");
        assert!(err.message.contains("only on Windows"), "{err}");
    }
}
