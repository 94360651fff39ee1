package org.mlcmanager.engine.criteria;

import java.util.LinkedHashSet;
import java.util.Set;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The variables an evaluation looked for and did not find, collected on the evaluating thread
 * while {@link #collect} runs; outside it, reports are dropped.
 */
public final class MissingValues {

  private static final Pattern QUOTED = Pattern.compile("'([^']*)'");
  private static final ThreadLocal<Set<String>> CURRENT = new ThreadLocal<>();

  private MissingValues() {
  }

  /** Runs {@code evaluation}, adding the names of the variables it missed to {@code missing}. */
  public static <T> T collect(Set<String> missing, Supplier<T> evaluation) {
    Set<String> previous = CURRENT.get();
    CURRENT.set(missing);
    try {
      return evaluation.get();
    } finally {
      CURRENT.set(previous);
    }
  }

  /** Records the variable a FEEL failure message names ("No variable found with name 'auc'"), if any. */
  static void report(String failureMessage) {
    Set<String> missing = CURRENT.get();
    if (missing == null || failureMessage == null) {
      return;
    }
    Matcher quoted = QUOTED.matcher(failureMessage);
    if (quoted.find()) {
      missing.add(quoted.group(1));
    }
  }

  static Set<String> newSet() {
    return new LinkedHashSet<>();
  }
}
