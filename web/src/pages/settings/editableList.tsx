/**
 * An editable list: the shape of a settings page that lists items (labels, inboxes, canned responses) and
 * has one form that creates an item or edits the chosen one, with each row offering "Edit" and "Delete".
 * The pages keep their own fields, rows and API calls; what they share is here.
 */
import { type QueryKey, type UseQueryResult, useMutation, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, Fragment, type ReactNode, type RefObject, useEffect, useRef } from "react";
import { useTranslation } from "react-i18next";
import { Spinner } from "../../components/Spinner";
import { ConfirmDelete, FormError, ReadOnlyNotice, Section, useCanManage } from "./shared";

/** The section that holds the create/edit form: owners and admins see it, agents the read-only notice instead. */
export function EditorSection({ id, title, children }: { id: string; title: string; children: ReactNode }) {
  const canManage = useCanManage();
  if (!canManage) return <ReadOnlyNotice />;
  return (
    <Section id={id} title={title}>
      {children}
    </Section>
  );
}

/** Items as a settings list, or a sentence when there are none. */
export function ItemList<T extends { id: string }>(props: {
  items: T[];
  empty: string;
  children: (item: T) => ReactNode;
}) {
  if (props.items.length === 0) return <p className="empty">{props.empty}</p>;
  return (
    <ul className="settings-list">
      {props.items.map((item) => (
        <Fragment key={item.id}>{props.children(item)}</Fragment>
      ))}
    </ul>
  );
}

/** A query's items as a settings list: its failure, a spinner while it loads, then the list. */
export function QueryList<T extends { id: string }>(props: {
  query: UseQueryResult<T[]>;
  empty: string;
  children: (item: T) => ReactNode;
}) {
  const { query } = props;
  return (
    <>
      <FormError error={query.error} />
      {query.isPending ? (
        <Spinner />
      ) : (
        <ItemList items={query.data ?? []} empty={props.empty}>
          {props.children}
        </ItemList>
      )}
    </>
  );
}

/** What `useItemForm` gives its page: `first` goes on the first field, the rest is for `ItemForm`. */
export interface ItemFormState {
  /** Whether the form edits an item (rather than creating one). */
  editing: boolean;
  first: RefObject<HTMLInputElement | null>;
  save: { error: unknown; isPending: boolean };
  submit: (event: FormEvent) => void;
  cancel: () => void;
}

/**
 * The behaviour of a form that creates an item or edits `editing`: choosing an item to edit moves focus to
 * the field given `first`; a save refreshes the list under `queryKey`, then closes an edit (`onDone`) or
 * hands a creation's answer to `onCreated` (which clears the fields for the next one).
 */
export function useItemForm<Item, Answer>(options: {
  editing: Item | null;
  queryKey: QueryKey;
  save: () => Promise<Answer>;
  /** A creation is submitted (before it is sent). */
  onCreating?: () => void;
  onCreated: (answer: Answer) => void;
  onDone: () => void;
}): ItemFormState {
  const { editing } = options;
  const client = useQueryClient();
  const first = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (editing) first.current?.focus();
  }, [editing]);
  const save = useMutation({
    mutationFn: options.save,
    onSuccess: (answer) => {
      void client.invalidateQueries({ queryKey: options.queryKey });
      if (editing) {
        options.onDone();
        return;
      }
      options.onCreated(answer);
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!editing) options.onCreating?.();
    save.mutate();
  };
  return { editing: editing !== null, first, save, submit, cancel: options.onDone };
}

/** The create/edit form around a page's own fields: their failure, then "Create …" or "Save changes" and "Cancel". */
export function ItemForm(props: {
  form: ItemFormState;
  /** The id of the heading that names the form. */
  labelledBy: string;
  /** The submit button's text when the form creates an item. */
  createLabel: string;
  children: ReactNode;
}) {
  const { t } = useTranslation();
  const { form } = props;
  return (
    <form className="settings-form" onSubmit={form.submit} aria-labelledby={props.labelledBy}>
      {props.children}
      <FormError error={form.save.error} />
      <div className="actions">
        <button type="submit" className="primary" disabled={form.save.isPending}>
          {form.editing ? t("settings.saveChanges") : props.createLabel}
        </button>
        {form.editing && (
          <button type="button" onClick={form.cancel}>
            {t("settings.cancel")}
          </button>
        )}
        {form.save.isPending && <Spinner label={t("settings.saving")} />}
      </div>
    </form>
  );
}

/** Deleting a listed item with `remove`, then refreshing the list under `queryKey`. */
export function useDeleteItem(queryKey: QueryKey, remove: () => Promise<unknown>) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: remove,
    onSuccess: () => client.invalidateQueries({ queryKey }),
  });
}

/** A row's "Edit" and "Delete" buttons, both named after the item (`name`); delete asks first. */
export function EditDeleteButtons(props: {
  name: string;
  onEdit: () => void;
  deletion: ReturnType<typeof useDeleteItem>;
  /** The delete question; "Delete “name”?" unless given. */
  question?: string | undefined;
}) {
  const { t } = useTranslation();
  return (
    <>
      <button type="button" onClick={props.onEdit} aria-label={`${t("settings.edit")}: ${props.name}`}>
        {t("settings.edit")}
      </button>
      <ConfirmDelete
        name={props.name}
        question={props.question}
        pending={props.deletion.isPending}
        onConfirm={() => props.deletion.mutate()}
      />
    </>
  );
}
