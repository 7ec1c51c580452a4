"""Feedback on outputs (``llm-enrich feedback``): pure, no Beam, no Kafka.

bytes on the feedback topic
  -> events.decode_event: JSON or Avro (llm_enrich.Feedback) -> FeedbackEvent | BadEvent
  -> events.check_corrections: every corrected field generated, its value of its type
  -> (the edge joins each event with the output it names)
  -> aggregate.Aggregate.fold: per (time window, provider, model, prompt hash), bins of
     counts and sums; never the events themselves
  -> result.build_result: typed figures per group and window, and the drift gate
  -> compare.compare_with_eval: production agreement next to the golden-set score
  -> report.feedback_report_html
verify.Verifications: the latest verdict and merged corrections per output (export)
"""
