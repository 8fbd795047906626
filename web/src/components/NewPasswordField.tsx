/**
 * A field where someone chooses a password (at sign-up, on accepting an invitation, when changing it), with
 * the rule it must meet said under it. The limits are the API's: 8 to 128 characters.
 */
export function NewPasswordField(props: {
  label: string;
  /** The rule, in words; the field is described by it. */
  hint: string;
  /** The hint's element id (unique on the page). */
  hintId: string;
  value: string;
  onChange: (value: string) => void;
}) {
  return (
    <>
      <label>
        {props.label}
        <input
          type="password"
          autoComplete="new-password"
          required
          minLength={8}
          maxLength={128}
          aria-describedby={props.hintId}
          value={props.value}
          onChange={(e) => props.onChange(e.target.value)}
        />
      </label>
      <small className="hint" id={props.hintId}>
        {props.hint}
      </small>
    </>
  );
}
